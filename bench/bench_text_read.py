"""A text corpus (CSV or JSON Lines), read and scored: critic's fast reader against the one it
replaced, and ``critic score`` on it against the same rows as Parquet.

    python bench/bench_text_read.py [BUNDLE] [--format csv|jsonl] [--rows 1000000] [--repeat 3]

Writes --rows IMDB reviews (50,000 repeated, as in bench_score.py) as one --format file (CSV:
pyarrow's writer, every review quoted, with commas, doubled quotes and line breaks; JSON
Lines: json.dumps) and one Parquet file, then times, interleaved, median of --repeat:

- ``read``: every row of the text file through ``iter_batches`` (20,000-row batches, text
  and id), in this process, with the fast reader and with the one before it, which critic
  keeps as the reference (CSV: the kernel's ``CsvRows`` against Python's csv module, the
  reader on Python 3.10; JSON Lines: orjson, with json.loads for what orjson reads otherwise,
  against json.loads alone, the reader without orjson); the batches are checked equal once;
- ``score`` (with BUNDLE): ``critic score`` of each, whole command in a fresh process: the
  Parquet file, the text file, and the text file with the reader before.

Writes bench/results/text_read-FORMAT[-TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scan import make_inputs
from bench_score import DEFAULT_DATA, HERE

BATCH_ROWS = 20_000
# critic score in a child process, with the fast reader or the one before (argv[1]).
CHILD = (
    "import sys; from critic.data import readers; fast = sys.argv.pop(1) == 'fast'; "
    "readers.KERNEL_CSV = readers.KERNEL_CSV and fast; "
    "readers._orjson = readers._orjson if fast else None; "
    "from critic.cli.main import main; sys.argv[0] = 'critic'; sys.exit(main())"
)
BEFORE = {"csv": "the csv module", "jsonl": "json.loads alone"}


def read_all(path: Path, fast: bool) -> tuple[float, list]:
    from critic.data import readers

    saved = readers.KERNEL_CSV, readers._orjson
    readers.KERNEL_CSV = saved[0] and fast
    readers._orjson = saved[1] if fast else None
    try:
        start = time.perf_counter()
        batches = list(readers.iter_batches(path, BATCH_ROWS, "text", "id"))
        return time.perf_counter() - start, batches
    finally:
        readers.KERNEL_CSV, readers._orjson = saved


def score(bundle: Path, corpus: Path, reader: str, out: Path) -> float:
    """Seconds of one whole ``critic score`` of ``corpus``; ``reader``: "fast" or "before"."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", CHILD, reader, "score", "--model", str(bundle), "--input",
           str(corpus), "--output", str(out), "--id-column", "id", "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "(0 with errors)" not in done.stdout + done.stderr:
        raise SystemExit(f"critic score {corpus.name} ({reader}) failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?")
    parser.add_argument("--format", choices=sorted(BEFORE), default="csv")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    fmt, before = args.format, BEFORE[args.format]
    times: dict[str, list[float]] = {"read, fast": [], f"read, {before}": []}
    if args.bundle:
        times.update({"score, Parquet": [], f"score, {fmt}": [], f"score, {fmt}, {before}": []})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_inputs(args.data, args.rows, [fmt, "parquet"], folder)
        text, parquet = inputs[fmt], inputs["parquet"]
        for k in range(args.repeat):  # interleaved: the VM's speed drifts
            seconds, fast_batches = read_all(text, fast=True)
            times["read, fast"].append(seconds)
            seconds, before_batches = read_all(text, fast=False)
            times[f"read, {before}"].append(seconds)
            if k == 0 and fast_batches != before_batches:
                raise SystemExit(f"the fast reader and {before} disagree")
            del fast_batches, before_batches
            if args.bundle:
                out = folder / "out"
                times["score, Parquet"].append(score(args.bundle, parquet, "fast", out))
                times[f"score, {fmt}"].append(score(args.bundle, text, "fast", out))
                times[f"score, {fmt}, {before}"].append(score(args.bundle, text, "before", out))
            print(", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        size = text.stat().st_size
    write(args, size, times)


def write(args, size: int, times: dict[str, list[float]]) -> None:
    machine = f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    name = f"text_read-{args.format}" + (f"-{args.tag}" if args.tag else "")
    med = {k: statistics.median(v) for k, v in times.items()}
    doc = {
        "machine": machine,
        "rows": args.rows,
        "format": args.format,
        "bytes": size,
        "repeat": args.repeat,
        "bundle": args.bundle.name if args.bundle else None,
        "times": {k: {"median_seconds": med[k], "runs": v} for k, v in times.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    lines = [
        f"{args.rows:,} IMDB reviews as one {args.format} file ({size / 1e6:,.0f} MB) and as "
        "Parquet; "
        f"{machine}; median of {args.repeat}, interleaved. read: iter_batches in one process; "
        "score: the whole `critic score` command, a fresh process each.",
        "",
        "| what | seconds | rows/s | against |",
        "|---|---:|---:|---:|",
    ]
    fmt, before = args.format, BEFORE[args.format]
    against = {
        "read, fast": [(f"read, {before}", "{:.2f}x " + before)],
        f"score, {fmt}": [
            (f"score, {fmt}, {before}", "{:.2f}x with " + before),
            ("score, Parquet", "{:.2f}x of the Parquet file's rows/s"),
        ],
    }
    for what, seconds in med.items():
        vs = "; ".join(
            text.format(med[peer] / seconds) for peer, text in against.get(what, []) if peer in med
        )
        lines.append(f"| {what} | {seconds:.2f} | {args.rows / seconds:,.0f} | {vs} |")
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
