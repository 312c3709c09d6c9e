"""End to end, raw review text -> probabilities: critic.Runtime vs the Keras recipe
(Tokenizer.texts_to_sequences + pad_sequences + model.predict) on the same weights.

    python bench/bench_runtime.py RUN_DIR_OR_BUNDLE [--data ../shared/data/imdb] [--repeat 5]

With a run directory the best trial is exported first (fp32 + int8) into a temporary
bundle; the Keras side loads the same checkpoint and the Keras-format tokenizer.json from
the bundle. Timed passes are interleaved; medians of --repeat. Writes
bench/results/runtime.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow.parquet as pq

import critic
from critic.export import export_bundle, from_run

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imdb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-sizes", default="64,256", help="Runtime batch sizes to try")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    texts = pq.read_table(args.data / "test.parquet", columns=["text"]).column("text")
    texts_list = texts.to_pylist()
    source = from_run(args.run_dir, 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp) / "bundle"
        export_bundle(source, bundle_dir, quantize="int8")
        bundle = critic.load_bundle(bundle_dir)
        keras_tok = tf.keras.preprocessing.text.tokenizer_from_json(
            (bundle_dir / "tokenizer.json").read_text()
        )
        model = keras.models.load_model(source.checkpoint, safe_mode=True, compile=False)
        maxlen = bundle.maxlen

        def keras_recipe():
            seqs = keras_tok.texts_to_sequences(texts_list)
            x = tf.keras.utils.pad_sequences(seqs, maxlen=maxlen)
            return model.predict(x, batch_size=256, verbose=0)[:, 0]

        runners = {"keras": keras_recipe}
        configs = [("fp32", True), ("fp32", False), ("int8", False)]
        for variant, window in configs:
            if variant not in bundle.variants or (window and "window" not in bundle.meta):
                continue
            for size in (int(b) for b in args.batch_sizes.split(",")):
                rt = critic.Runtime(bundle, variant=variant, batch_size=size, window=window)
                name = f"critic {variant}{' window' if window else ''} batch {size}"
                runners[name] = lambda rt=rt: rt.predict(texts)
        critic.Runtime(bundle).predict(texts_list[:512])  # warm-up
        model.predict(np.zeros((256, maxlen), np.int32), batch_size=256, verbose=0)
        times: dict[str, list[float]] = {name: [] for name in runners}
        outputs = {}
        for _ in range(args.repeat):
            for name, run in runners.items():
                start = time.perf_counter()
                outputs[name] = run()
                times[name].append(time.perf_counter() - start)
                print(f"{name}: {times[name][-1]:.2f}s", flush=True)
        y = pq.read_table(args.data / "test.parquet", columns=["label"]).column("label")
        labels = np.asarray(y.to_pylist()) >= 0.5 if y.type != "string" else None
        rows = {}
        keras_median = statistics.median(times["keras"])
        for name, ts in times.items():
            med = statistics.median(ts)
            p = outputs[name]
            rows[name] = {
                "median_seconds": med,
                "texts_per_second": len(texts_list) / med,
                "speedup_vs_keras": keras_median / med,
                "max_abs_diff_vs_keras": float(np.abs(p - outputs["keras"]).max()),
                "accuracy": None if labels is None else float(((p >= 0.5) == labels).mean()),
                "runs": ts,
            }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "texts": len(texts_list),
        "model": bundle.meta["trial"].get("model"),
        "tokenizer": bundle.meta["trial"].get("tokenizer"),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runtime.json").write_text(json.dumps(result, indent=2))
    md = [
        f"{len(texts_list)} IMDB test reviews, raw text -> probabilities; model "
        f"{result['model']}, tokenizer {result['tokenizer']}; {result['machine']}; "
        f"median of {args.repeat}.",
        "",
        "| pipeline | texts/s | vs Keras | max abs diff vs Keras | accuracy |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        acc = "" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f} %"
        md.append(
            f"| {name} | {r['texts_per_second']:.0f} | {r['speedup_vs_keras']:.2f}x | "
            f"{r['max_abs_diff_vs_keras']:.2g} | {acc} |"
        )
    (args.out / "runtime.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
