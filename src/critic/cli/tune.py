"""``critic tune``: run (or resume) a Ray Tune sweep from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path

IMDB_HELP = (
    "the full aclImdb data (folder or .tar.gz, local or a storage URI such as "
    "s3://bucket/aclImdb_v1.tar.gz): the path of a config of kind imdb, or the "
    "data instead of another config's dataset (default for kind imdb: $CRITIC_IMDB)"
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tune",
        help="run a hyperparameter sweep of the Keras model zoo on Ray Tune",
        description="Run a sweep described by a YAML config (dataset, tokenizer, model search "
        "space, scheduler, resources) on Ray Tune, or resume an interrupted one. Inside "
        "`ray job submit` it joins that cluster; run plainly it starts a local Ray. Writes "
        "leaderboard.csv/.md, learning-curve PNGs and checkpoints under the run directory.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", type=Path, help="sweep YAML (every key: docs/configs.md)")
    group.add_argument(
        "--resume", metavar="RUN_DIR", help="continue this run (a folder or a storage URI)"
    )
    parser.add_argument("--imdb", metavar="ACLIMDB", help=IMDB_HELP)
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs for an embedded local Ray (default: all)"
    )
    parser.add_argument(
        "--export-top",
        type=int,
        default=0,
        metavar="K",
        help="at the end, export the K best trials as verified ONNX bundles to RUN_DIR/bundles",
    )
    parser.add_argument(
        "--quantize", choices=["int8"], help="with --export-top: also write int8 models"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from critic.orchestrator.config import SweepConfig
    from critic.orchestrator.sweep import SweepInterrupted, resume_sweep, run_sweep

    try:
        if args.resume:
            run_dir = resume_sweep(args.resume, num_cpus=args.num_cpus)
        else:
            cfg = SweepConfig.load(args.config, imdb=args.imdb)
            run_dir = run_sweep(cfg, num_cpus=args.num_cpus)
    except SweepInterrupted as e:
        print(f"critic tune: {e}", file=sys.stderr)
        return 130
    print(f"critic tune: done; leaderboard in {run_dir / 'leaderboard.md'}")
    if args.export_top > 0:
        from critic.export.runs import export_run

        if not export_run(run_dir, args.export_top, quantize=args.quantize):
            return 1
    return 0
