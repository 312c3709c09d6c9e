"""``critic tune``: run (or resume) a Ray Tune sweep from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    _register_tune(commands)
    _register_run(commands)


def _register_run(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="the main job: sweep -> export the best trial -> score the test split",
        description="Run a sweep (as `critic tune`), export its best trial as a verified "
        "bundle (RUN_DIR/bundles/rank1), score the test split's raw text with that bundle "
        "(`critic score`, into RUN_DIR/scored) and print the leaderboard, the test accuracy "
        "and the scoring speed. --imdb runs the same sweep on the full aclImdb data.",
    )
    parser.add_argument("--config", type=Path, required=True, help="sweep YAML")
    parser.add_argument(
        "--imdb",
        type=Path,
        metavar="ACLIMDB",
        help="use the full aclImdb data (folder or .tar.gz) instead of the config's dataset",
    )
    parser.add_argument("--quantize", choices=["int8"], help="also export an int8 model")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for an embedded Ray")
    parser.set_defaults(run=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    import sys

    from .config import SweepConfig
    from .pipeline import print_report, run_pipeline, with_imdb
    from .sweep import SweepInterrupted

    cfg = SweepConfig.load(args.config)
    if args.imdb:
        cfg = with_imdb(cfg, args.imdb)
    try:
        _, report = run_pipeline(cfg, num_cpus=args.num_cpus, quantize=args.quantize)
    except SweepInterrupted as e:
        print(f"critic run: {e}", file=sys.stderr)
        return 130
    print_report(report)
    return 0


def _register_tune(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tune",
        help="run a hyperparameter sweep of the Keras model zoo on Ray Tune",
        description="Run a sweep described by a YAML config (dataset, tokenizer, model search "
        "space, scheduler, resources) on Ray Tune, or resume an interrupted one. Inside "
        "`ray job submit` it joins that cluster; run plainly it starts a local Ray. Writes "
        "leaderboard.csv/.md, learning-curve PNGs and checkpoints under the run directory.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", type=Path, help="sweep YAML (see orchestrator/config.py)")
    group.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
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

    from .config import SweepConfig
    from .sweep import SweepInterrupted, resume_sweep, run_sweep

    try:
        if args.resume:
            run_dir = resume_sweep(args.resume, num_cpus=args.num_cpus)
        else:
            run_dir = run_sweep(SweepConfig.load(args.config), num_cpus=args.num_cpus)
    except SweepInterrupted as e:
        print(f"critic tune: {e}", file=sys.stderr)
        return 130
    print(f"critic tune: done; leaderboard in {run_dir / 'leaderboard.md'}")
    if args.export_top > 0:
        from critic.export.cli import export_run

        if not export_run(run_dir, args.export_top, run_dir / "bundles", args.quantize):
            return 1
    return 0
