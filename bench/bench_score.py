"""``critic score`` on a large corpus: rows/s and peak memory, local and Ray engines, with the
corpus and the output on local disk and on an S3-compatible server.

    python bench/bench_score.py BUNDLE [--rows 1000000] [--repeat 3] [--engines local,ray]
                                       [--storage local,s3]
    python bench/bench_score.py BUNDLE --small-files 10000x10 [--engines local]

The corpus is the 50,000 IMDB reviews of ../shared/data/imdb repeated to --rows rows, written
once as Parquet into a temporary folder (and uploaded once to the S3 server for ``s3``). The
S3 server is moto's standalone server (the test suite's, ``moto[server]``), started here on
127.0.0.1 and reached through the standard AWS variables, as a user's store would be. Each
run is a fresh ``critic score`` process; its peak memory is the largest sum of PSS over the
process and all its descendants (Ray's raylet, workers and actors included; the S3 server is
not one), sampled every 0.2 s from /proc (Linux only). The Ray engine's fixed cost per node is
measured apart: each engine scoring --overhead-rows rows, where nothing but the engine itself
takes memory. Writes bench/results/score.{json,md}.

With ``--small-files FxR``: the same F x R reviews as F JSON Lines files of R rows (a folder)
and as one JSON Lines file, each engine scoring both, interleaved, median of --repeat: rows/s
and output files. Writes bench/results/score_small_files.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imdb"
BUCKET = "critic-bench"


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
    path = folder / f"reviews-{rows}.parquet"
    with pq.ParquetWriter(path, pa.schema([("id", pa.int64()), ("text", pa.large_string())])) as w:
        done = 0
        while done < rows:
            n = min(len(reviews), rows - done)
            ids = pa.array(range(done, done + n), type=pa.int64())
            w.write_table(pa.table({"id": ids, "text": reviews.slice(0, n)}), row_group_size=50_000)
            done += n
    return path


@contextlib.contextmanager
def s3_server():
    """moto's standalone server on a free port of 127.0.0.1, with the standard AWS variables
    set for this process and the commands it starts; stopped by its process group."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("the S3 server (moto) did not start") from None
                time.sleep(0.2)
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench-secret",
            AWS_ENDPOINT_URL=endpoint,
            AWS_DEFAULT_REGION="us-east-1",
        )
        fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}?allow_bucket_creation=true")
        fs.create_dir(BUCKET)
        yield fs
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
    line = re.sub(r" -> \S+;", " -> OUTPUT;", line)  # the benchmark's temporary folder
    return {"seconds": seconds, "peak_pss_bytes": peak, "summary": line}


def check_output(fs: pafs.FileSystem, folder: str, rows: int) -> None:
    """Every id of the corpus exactly once in the output's shards (ids are written as text)."""
    ids = pads.dataset(folder, filesystem=fs, format="parquet").to_table(columns=["id"])
    got = np.sort(ids.column("id").cast(pa.int64()).to_numpy())
    assert np.array_equal(got, np.arange(rows)), f"{folder}: rows missing or doubled"
    fs.delete_dir(folder)


def score(bundle: Path, corpus: str, out: str, engine: str, variant: str) -> dict:
    cmd = [sys.executable, "-m", "critic", "score", "--model", str(bundle), "--input", corpus,
           "--output", out, "--id-column", "id", "--engine", engine, "--variant", variant,
           "--no-progress"]  # fmt: skip
    return run(cmd)


def make_small_files(data: Path, files: int, rows: int, folder: Path) -> tuple[Path, Path]:
    """``files`` JSON Lines files of ``rows`` reviews in a folder, and the same lines in one
    file (ids 0 .. files x rows - 1)."""
    reviews = pq.read_table(data / "test.parquet", columns=["text"]).column("text").to_pylist()
    many, one = folder / "many", folder / "one.jsonl"
    many.mkdir()
    with open(one, "w", encoding="utf-8") as whole:
        for f in range(files):
            lines = "".join(
                json.dumps({"id": f * rows + r, "text": reviews[(f * rows + r) % len(reviews)]})
                + "\n"
                for r in range(rows)
            )
            (many / f"part-{f:06d}.jsonl").write_text(lines, encoding="utf-8")
            whole.write(lines)
    return many, one


def small_files(args) -> None:
    files, rows = (int(x) for x in args.small_files.split("x"))
    total = files * rows
    engines = args.engines.split(",")
    local_fs = pafs.LocalFileSystem()
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[int]] = {}
    outputs: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        many, one = make_small_files(args.data, files, rows, Path(tmp))
        for i in range(args.repeat):
            for engine in engines:
                for kind, source in (("many", many), ("one", one)):
                    out = f"{tmp}/out-{engine}-{kind}-{i}"
                    result = score(args.bundle, str(source), out, engine, args.variant)
                    outputs[f"{engine}/{kind}"] = len(os.listdir(out)) - 2  # manifest, summary
                    check_output(local_fs, out, total)
                    times.setdefault(f"{engine}/{kind}", []).append(result["seconds"])
                    peaks.setdefault(f"{engine}/{kind}", []).append(result["peak_pss_bytes"])
                    print(f"{engine}/{kind}: {result['seconds']:.1f} s", flush=True)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "bundle": str(args.bundle.name),
        "files": files,
        "rows_per_file": rows,
        "repeat": args.repeat,
        "runs": {
            key: {
                "median_seconds": statistics.median(t),
                "rows_per_second": total / statistics.median(t),
                "output_files": outputs[key],
                "seconds": t,
                "peak_pss_mb": max(peaks[key]) / 2**20,
            }
            for key, t in times.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score_small_files.json").write_text(json.dumps(report, indent=2))
    md = [
        f"critic score, {total:,} IMDB reviews as {files:,} JSON Lines files of {rows} rows "
        f"and as one file, {args.variant} bundle; {report['machine']}; wall time of the whole "
        f"command, median of {args.repeat} interleaved runs.",
        "",
        "| engine | input | rows/s | wall (s) | output files | vs one file | peak memory (MB) "
        "| cost per input file (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine in engines:
        one = report["runs"][f"{engine}/one"]
        base = one["rows_per_second"]
        for kind in ("many", "one"):
            r = report["runs"][f"{engine}/{kind}"]
            label = f"{files:,} files" if kind == "many" else "one file"
            # What each input file adds to the whole command (against the one file)
            extra = 1000 * (r["median_seconds"] - one["median_seconds"]) / files
            per_file = f"{extra:.3f}" if kind == "many" else ""
            md.append(
                f"| {engine} | {label} | {r['rows_per_second']:,.0f} | "
                f"{r['median_seconds']:.1f} | {r['output_files']} | "
                f"{r['rows_per_second'] / base:.2f}x | {r['peak_pss_mb']:.0f} | {per_file} |"
            )
    (args.out / "score_small_files.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def summarize(runs: list[dict], rows: int) -> dict:
    med = statistics.median(r["seconds"] for r in runs)
    peaks = [r["peak_pss_bytes"] / 2**20 for r in runs]
    return {
        "median_seconds": med,
        "rows_per_second": rows / med,
        "peak_pss_mb": max(peaks),
        "peak_pss_mb_range": [min(peaks), max(peaks)],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--overhead-rows", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--storage", default="local,s3")
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--small-files", help="FILESxROWS: many small files against one file")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the S3 server (its own process group) is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.small_files:
        small_files(args)
        return
    engines, storages = args.engines.split(","), args.storage.split(",")

    results, overhead = {}, {}
    local_fs = pafs.LocalFileSystem()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        corpus = make_corpus(args.data, args.rows, Path(tmp))
        where = {"local": (local_fs, str(corpus), tmp)}
        if "s3" in storages:
            s3 = stack.enter_context(s3_server())
            start = time.perf_counter()
            pafs.copy_files(str(corpus), f"{BUCKET}/{corpus.name}", local_fs, s3)
            print(f"uploaded {corpus.name} in {time.perf_counter() - start:.0f} s", flush=True)
            where["s3"] = (s3, f"s3://{BUCKET}/{corpus.name}", f"s3://{BUCKET}")
        small = make_corpus(args.data, args.overhead_rows, Path(tmp))
        for engine in engines:
            runs = []
            for i in range(args.repeat):
                out = f"{tmp}/small-{engine}-{i}"
                runs.append(score(args.bundle, str(small), out, engine, args.variant))
                check_output(local_fs, out, args.overhead_rows)
            overhead[engine] = summarize(runs, args.overhead_rows)
            print(f"{engine}, {args.overhead_rows} rows: {overhead[engine]['peak_pss_mb']:.0f} MB")
        for storage in storages:
            fs, source, root = where[storage]
            for engine in engines:
                runs = []
                reruns = []
                for i in range(args.repeat):
                    out = f"{root}/out-{engine}-{i}"
                    runs.append(score(args.bundle, source, out, engine, args.variant))
                    # The same command on the finished output: nothing to do.
                    reruns.append(score(args.bundle, source, out, engine, args.variant))
                    assert "scored 0 rows" in reruns[-1]["summary"], reruns[-1]
                    check_output(fs, out.removeprefix("s3://"), args.rows)
                    print(f"{engine}/{storage}: {runs[-1]}; re-run {reruns[-1]}", flush=True)
                results[f"{engine}/{storage}"] = summarize(runs, args.rows)
                results[f"{engine}/{storage}"]["rerun_seconds"] = statistics.median(
                    r["seconds"] for r in reruns
                )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "bundle": str(args.bundle.name),
        "rows": args.rows,
        "variant": args.variant,
        "repeat": args.repeat,
        "runs": results,
        "overhead_rows": args.overhead_rows,
        "overhead": overhead,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score.json").write_text(json.dumps(report, indent=2))
    md = [
        f"critic score, {args.rows:,} IMDB reviews (Parquet, 50,000 reviews repeated), "
        f"{args.variant} bundle; {report['machine']}; wall time of the whole command, median "
        f"of {args.repeat}; S3 = moto's server on 127.0.0.1 (same cores).",
        "",
        "| engine | corpus and output | rows/s | wall (s) | peak memory, process tree PSS (MB) "
        "| re-run of the finished output (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, r in results.items():
        engine, storage = key.split("/")
        low, high = r["peak_pss_mb_range"]
        md.append(
            f"| {engine} | {storage} | {r['rows_per_second']:.0f} | {r['median_seconds']:.0f} | "
            f"{high:.0f} ({low:.0f}-{high:.0f}) | {r['rerun_seconds']:.2f} |"
        )
    md += [
        "",
        f"Fixed cost: each engine scoring {args.overhead_rows:,} rows (local files).",
        "",
        "| engine | wall (s) | peak memory (MB) |",
        "|---|---:|---:|",
    ]
    for engine, r in overhead.items():
        md.append(f"| {engine} | {r['median_seconds']:.1f} | {r['peak_pss_mb']:.0f} |")
    (args.out / "score.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
