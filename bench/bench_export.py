"""Export benchmark: a trained sweep's best trial -> verified bundle, then onnxruntime (fp32 and
int8) vs Keras ``model.predict`` on the run's IMDB test sequences.

    python bench/bench_export.py RUN_DIR [--rows 25000] [--repeat 5]

RUN_DIR is a finished ``critic tune`` run (e.g. of configs/seed_lstm.yaml). Timings are
medians of --repeat passes, interleaved (keras, fp32, int8, keras, ...) so drift on a shared
machine hits all three alike. Writes bench/results/export.json and export.md.
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

from critic.bundle import load_bundle
from critic.export import export_bundle, from_run
from critic.export.verify import accuracy, onnx_predict

HERE = Path(__file__).resolve().parent
BATCH = 256


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rows", type=int, default=25000, help="test sequences timed")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    import keras

    source = from_run(args.run_dir, 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = export_bundle(source, Path(tmp) / "bundle", quantize="int8")
        export_wall = time.perf_counter() - start
        bundle = load_bundle(report.path)
        meta = bundle.meta
        x = np.load(source.data / "x_test.npy")[: args.rows]
        y = np.load(source.data / "y_test.npy")[: args.rows]
        model = keras.models.load_model(source.checkpoint, safe_mode=True, compile=False)
        threads = os.cpu_count() or 1
        runners = {
            "keras": lambda xs: model.predict(xs, batch_size=BATCH, verbose=0)[:, 0],
        }
        for variant in bundle.variants:
            sess = session(bundle.model_file(variant), threads)
            runners[f"onnx_{variant}"] = lambda xs, s=sess: onnx_predict(s, xs)
        for run in runners.values():  # warm-up
            run(x[:BATCH])
        times: dict[str, list[float]] = {name: [] for name in runners}
        outputs = {}
        for _ in range(args.repeat):
            for name, run in runners.items():
                t0 = time.perf_counter()
                outputs[name] = run(x)
                times[name].append(time.perf_counter() - t0)
                print(f"{name}: {times[name][-1]:.2f}s", flush=True)
        rows = {}
        for name, ts in times.items():
            med = statistics.median(ts)
            rows[name] = {
                "median_seconds": med,
                "sequences_per_second": len(x) / med,
                "speedup_vs_keras": statistics.median(times["keras"]) / med,
                "accuracy": accuracy(outputs[name], y),
                "max_abs_diff_vs_keras": float(np.abs(outputs[name] - outputs["keras"]).max()),
                "runs": ts,
            }
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "trial": source.trial.get("trial"),
            "model": meta["trial"].get("model"),
            "tokenizer": meta["trial"].get("tokenizer"),
            "rows": len(x),
            "export_wall_seconds": export_wall,
            "export_seconds_without_int8": meta["export_seconds"],
            "onnx_bytes": meta["models"]["fp32"]["bytes"],
            "int8_bytes": meta["models"].get("int8", {}).get("bytes"),
            "recurrent": meta["model"]["recurrent"],
            "parity": meta["parity"],
            "versions": meta["versions"],
            "predict": rows,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(result, indent=2))
    md = [
        f"Seed model {result['model']} / tokenizer {result['tokenizer']}; {result['rows']} IMDB "
        f"test sequences; {result['machine']}; median of {args.repeat}.",
        "",
        f"Export (convert + verify + int8 + write): {export_wall:.1f} s; ONNX "
        f"{result['onnx_bytes'] / 1e6:.2f} MB (int8 {(result['int8_bytes'] or 0) / 1e6:.2f} MB); "
        f"recurrence {result['recurrent']}; parity on {meta['parity']['rows']} "
        f"{meta['parity']['source']} rows: max |diff| {meta['parity']['max_abs_diff']:.2g}, "
        f"{meta['parity']['label_flips']} label flips.",
        "",
        "| engine | seq/s | vs Keras | test accuracy | max abs diff vs Keras |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        md.append(
            f"| {name} | {r['sequences_per_second']:.0f} | {r['speedup_vs_keras']:.2f}x | "
            f"{100 * r['accuracy']:.2f} % | {r['max_abs_diff_vs_keras']:.2g} |"
        )
    (args.out / "export.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
