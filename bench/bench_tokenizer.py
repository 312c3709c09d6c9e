"""Tokenizer benchmark: critic vs Keras (and Hugging Face tokenizers) on real IMDB reviews.

For each configuration the outputs are first checked to be identical on every row, then
timed: median of --repeat runs, ratios against Keras measured in the same run.

    python bench/bench_tokenizer.py [--data ../shared/data/imdb] [--repeat 5]

Writes bench/results/tokenizer.json and bench/results/tokenizer.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

# One thread for the Rust tokenizer (it is compared with critic's 1-thread number);
# set before `tokenizers` is imported.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow.parquet as pq

from critic.kernels import DEFAULT_FILTERS, Tokenizer, default_threads

HERE = Path(__file__).resolve().parent


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


def hf_tokenizer(tok: Tokenizer, maxlen: int):
    """HF tokenizers configured to reproduce Keras ids (only possible with an oov_token)."""
    import re

    from tokenizers import Regex, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    vocab = {w: i for w, i in tok.word_index.items() if i < tok.num_words}
    vocab[tok.oov_token] = tok.word_index[tok.oov_token]
    hf = HFTokenizer(models.WordLevel(vocab=vocab, unk_token=tok.oov_token))
    hf.normalizer = normalizers.Lowercase()
    separators = "[" + re.escape(DEFAULT_FILTERS + tok.split) + "]"
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(separators), behavior="removed")
    hf.enable_padding(direction="left", length=maxlen, pad_id=0)
    hf.enable_truncation(max_length=maxlen, direction="left")
    return hf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared/data/imdb")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--num-words", type=int, default=20000)
    parser.add_argument("--maxlen", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    import pyarrow as pa
    import tensorflow as tf

    keras_text = tf.keras.preprocessing.text
    keras_pad = tf.keras.utils.pad_sequences
    train = pq.read_table(args.data / "train.parquet").column("text").to_pylist()
    test_table = pq.read_table(args.data / "test.parquet")
    test = test_table.column("text").to_pylist()
    arrow_col = test_table.column("text")
    assert isinstance(arrow_col, pa.ChunkedArray)
    results: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "texts": len(test),
        "repeat": args.repeat,
        "num_words": args.num_words,
        "maxlen": args.maxlen,
        "configs": {},
    }

    for oov in ("<OOV>", None):
        label = f"oov_token={oov!r}"
        print(f"== {label}")
        table = run_config(args, oov, train, test, arrow_col, keras_text, keras_pad)
        results["configs"][label] = table
        for name, row in table.items():
            rate = f"{row['texts_per_s']:>10,.0f}/s" if "texts_per_s" in row else " " * 12
            print(f"  {name:<58} {row['seconds']:8.3f}s {rate} {row['vs_keras']:6.1f}x")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tokenizer.json").write_text(json.dumps(results, indent=2))
    (args.out / "tokenizer.md").write_text(_markdown(results))
    print(_markdown(results))


def run_config(args, oov, train, test, arrow_col, keras_text, keras_pad) -> dict:
    """Fit and encode timings for one oov_token setting, checked against Keras first."""
    n, r, maxlen, threads = len(test), args.repeat, args.maxlen, default_threads()
    opts = {"num_words": args.num_words, "oov_token": oov}
    k_fit_s, k_fit_all, ktok = timed(lambda: _fit(keras_text.Tokenizer(**opts), train), r)
    c_fit_s, c_fit_all, ctok = timed(lambda: _fit(Tokenizer(**opts), train), r)
    c1_fit_s, _, _ = timed(lambda: _fit(Tokenizer(**opts), train, threads=1), r)
    assert ctok.word_index == ktok.word_index
    keras_s, _, expected = timed(lambda: keras_pad(ktok.texts_to_sequences(test), maxlen=maxlen), r)
    variants = {}
    if oov is not None:
        hf = hf_tokenizer(ctok, maxlen)
        variants["(b) HF tokenizers WordLevel, 1 thread"] = lambda: np.array(
            [e.ids for e in hf.encode_batch(test)], dtype=np.int32
        )
    variants["(c) critic encode, 1 thread"] = lambda: ctok.encode(test, maxlen, threads=1)
    variants[f"(d) critic encode, {threads} threads"] = lambda: ctok.encode(
        test, maxlen, threads=threads
    )
    variants["(e) critic encode from a pyarrow column, 1 thread"] = lambda: ctok.encode(
        arrow_col, maxlen, threads=1
    )
    variants[f"(e) critic encode from a pyarrow column, {threads} threads"] = lambda: ctok.encode(
        arrow_col, maxlen, threads=threads
    )
    rows = {"(a) Keras texts_to_sequences + pad_sequences": keras_s}
    for name, fn in variants.items():
        got = fn()
        mismatched = int((got != expected).any(axis=1).sum())
        assert mismatched == 0, f"{name}: {mismatched} of {n} rows differ from Keras"
        rows[name] = timed(fn, r)[0]
    table = {
        name: {"seconds": s, "texts_per_s": n / s, "vs_keras": keras_s / s}
        for name, s in rows.items()
    }
    table["fit: Keras"] = {"seconds": k_fit_s, "vs_keras": 1.0, "all": k_fit_all}
    table[f"fit: critic, {threads} threads"] = {
        "seconds": c_fit_s,
        "vs_keras": k_fit_s / c_fit_s,
        "all": c_fit_all,
    }
    table["fit: critic, 1 thread"] = {"seconds": c1_fit_s, "vs_keras": k_fit_s / c1_fit_s}
    return table


def _fit(tok, texts, **kwargs):
    tok.fit_on_texts(texts, **kwargs)
    return tok


def _markdown(results: dict) -> str:
    lines = [
        f"{results['texts']:,} IMDB test reviews, num_words={results['num_words']}, "
        f"maxlen={results['maxlen']}; fit on the 25,000 train reviews; median of "
        f"{results['repeat']} runs; {results['machine']['cores']} cores.",
        "",
        "| config | method | seconds | texts/s | vs Keras |",
        "|---|---|---:|---:|---:|",
    ]
    for label, table in results["configs"].items():
        for name, row in table.items():
            rate = f"{row['texts_per_s']:,.0f}" if "texts_per_s" in row else ""
            lines.append(
                f"| {label} | {name} | {row['seconds']:.3f} | {rate} | {row['vs_keras']:.1f}x |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
