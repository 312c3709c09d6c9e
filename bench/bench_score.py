"""``critic score`` on a large corpus: rows/s and peak memory, local and Ray engines.

    python bench/bench_score.py BUNDLE [--rows 1000000] [--repeat 1] [--engines local,ray]

The corpus is the 50,000 IMDB reviews of ../shared/data/imdb repeated to --rows rows, written
once as Parquet into a temporary folder. Each run is a fresh ``critic score`` process; its
peak memory is the largest sum of PSS over the process and all its descendants (Ray's
raylet, workers and actors included), sampled every 0.2 s from /proc (Linux only).
Writes bench/results/score.{json,md}.
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

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imdb"


def tree_pss(root: int) -> int:
    """Memory of ``root`` and its descendants (bytes): the sum of their PSS, so pages shared
    between processes (Ray's object store, shared libraries) are counted once."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def make_corpus(data: Path, rows: int, folder: Path) -> Path:
    reviews = pa.concat_tables(
        [pq.read_table(data / f"{s}.parquet", columns=["text"]) for s in ("train", "test")]
    ).column("text")
    path = folder / "reviews.parquet"
    with pq.ParquetWriter(path, pa.schema([("id", pa.int64()), ("text", pa.large_string())])) as w:
        done = 0
        while done < rows:
            n = min(len(reviews), rows - done)
            ids = pa.array(range(done, done + n), type=pa.int64())
            w.write_table(pa.table({"id": ids, "text": reviews.slice(0, n)}), row_group_size=50_000)
            done += n
    return path


def run(cmd: list[str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss(proc.pid))
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    line = [x for x in out.splitlines() if x.startswith("critic score:")][-1]
    return {"seconds": seconds, "peak_pss_bytes": peak, "summary": line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(args.data, args.rows, Path(tmp))
        for engine in args.engines.split(","):
            runs = []
            for i in range(args.repeat):
                out = Path(tmp) / f"out-{engine}-{i}"
                cmd = [sys.executable, "-m", "critic", "score", "--model", str(args.bundle),
                       "--input", str(corpus), "--output", str(out), "--id-column", "id",
                       "--engine", engine, "--variant", args.variant, "--no-progress"]  # fmt: skip
                runs.append(run(cmd))
                rows = pq.ParquetDataset(sorted(out.glob("part-*"))).read(columns=["id"]).num_rows
                assert rows == args.rows, f"{engine}: {rows} rows written, expected {args.rows}"
                shutil.rmtree(out)
                print(f"{engine}: {runs[-1]}", flush=True)
            med = statistics.median(r["seconds"] for r in runs)
            results[engine] = {
                "median_seconds": med,
                "rows_per_second": args.rows / med,
                "peak_pss_mb": max(r["peak_pss_bytes"] for r in runs) / 2**20,
                "runs": runs,
            }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "rows": args.rows,
        "variant": args.variant,
        "engines": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score.json").write_text(json.dumps(report, indent=2))
    md = [
        f"critic score, {args.rows:,} IMDB reviews (Parquet, 50,000 reviews repeated), "
        f"{args.variant} bundle; {report['machine']}; wall time of the whole command, median "
        f"of {args.repeat}.",
        "",
        "| engine | rows/s | wall (s) | peak memory, process tree PSS (MB) |",
        "|---|---:|---:|---:|",
    ]
    for engine, r in results.items():
        md.append(
            f"| {engine} | {r['rows_per_second']:.0f} | {r['median_seconds']:.0f} | "
            f"{r['peak_pss_mb']:.0f} |"
        )
    (args.out / "score.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
