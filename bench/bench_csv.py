"""A CSV corpus, read and scored: critic's C++ CSV reader against the csv-module reader it
replaced, and ``critic score`` on CSV against the same rows as Parquet.

    python bench/bench_csv.py [BUNDLE] [--rows 1000000] [--repeat 3] [--tag TAG]

Writes --rows IMDB reviews (50,000 repeated, as in bench_score.py) as one CSV file (pyarrow's
writer: every review quoted, with commas, doubled quotes and line breaks) and one Parquet
file, then times, interleaved, median of --repeat:

- ``read``: every row of the CSV file through ``iter_batches`` (20,000-row batches, text and
  id), in this process, with the kernel's reader (``CsvRows``) and with the csv-module reader
  (``readers.KERNEL_CSV`` off: the code before the kernel reader, kept for Python 3.10); the
  batches are checked equal once;
- ``score`` (with BUNDLE): ``critic score`` of each, whole command in a fresh process: the
  Parquet file, the CSV file, and the CSV file with the csv-module scan and reader.

Writes bench/results/csv[-TAG].{json,md}.
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

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from bench_scan import make_inputs
from bench_score import DEFAULT_DATA, HERE

BATCH_ROWS = 20_000
# critic score in a child process, with the csv-module scan and reader when asked (argv[1]).
CHILD = (
    "import sys; from critic.data import readers; "
    "readers.KERNEL_CSV = sys.argv.pop(1) == 'kernel'; "
    "from critic.cli.main import main; sys.argv[0] = 'critic'; sys.exit(main())"
)


def read_all(path: Path, kernel: bool) -> tuple[float, list]:
    from critic.data import readers

    saved, readers.KERNEL_CSV = readers.KERNEL_CSV, kernel
    try:
        start = time.perf_counter()
        batches = list(readers.iter_batches(path, BATCH_ROWS, "text", "id"))
        return time.perf_counter() - start, batches
    finally:
        readers.KERNEL_CSV = saved


def score(bundle: Path, corpus: Path, reader: str, out: Path) -> float:
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
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"read, kernel": [], "read, csv module": []}
    if args.bundle:
        times.update({"score, Parquet": [], "score, CSV": [], "score, CSV, csv module": []})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv = make_inputs(args.data, args.rows, ["csv"], folder)["csv"]
        parquet = folder / "reviews.parquet"
        whole = pacsv.read_csv(csv, parse_options=pacsv.ParseOptions(newlines_in_values=True))
        pq.write_table(whole, parquet, row_group_size=50_000)
        del whole
        for k in range(args.repeat):  # interleaved: the VM's speed drifts
            seconds, kernel_batches = read_all(csv, kernel=True)
            times["read, kernel"].append(seconds)
            seconds, module_batches = read_all(csv, kernel=False)
            times["read, csv module"].append(seconds)
            if k == 0 and kernel_batches != module_batches:
                raise SystemExit("the kernel's reader and the csv module's disagree")
            del kernel_batches, module_batches
            if args.bundle:
                out = folder / "out"
                times["score, Parquet"].append(score(args.bundle, parquet, "kernel", out))
                times["score, CSV"].append(score(args.bundle, csv, "kernel", out))
                times["score, CSV, csv module"].append(score(args.bundle, csv, "module", out))
            print(", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        size = csv.stat().st_size
    write(args, size, times)


def write(args, size: int, times: dict[str, list[float]]) -> None:
    machine = f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores"
    name = f"csv-{args.tag}" if args.tag else "csv"
    med = {k: statistics.median(v) for k, v in times.items()}
    doc = {
        "machine": machine,
        "rows": args.rows,
        "csv_bytes": size,
        "repeat": args.repeat,
        "bundle": args.bundle.name if args.bundle else None,
        "times": {k: {"median_seconds": med[k], "runs": v} for k, v in times.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    lines = [
        f"{args.rows:,} IMDB reviews as one CSV file ({size / 1e6:,.0f} MB) and as Parquet; "
        f"{machine}; median of {args.repeat}, interleaved. read: iter_batches in one process; "
        "score: the whole `critic score` command, a fresh process each.",
        "",
        "| what | seconds | rows/s | against |",
        "|---|---:|---:|---:|",
    ]
    against = {
        "read, kernel": [("read, csv module", "{:.2f}x the csv module's")],
        "score, CSV": [
            ("score, CSV, csv module", "{:.2f}x with the csv module's scan and read"),
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
