"""``critic run``: the main job, sweep -> export -> score -> report (:mod:`critic.pipeline`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .tune import IMDB_HELP


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="the main job: sweep -> export the best trial -> score the test split",
        description="Run a sweep (as `critic tune`), export its best trial as a verified "
        "bundle (RUN_DIR/bundles/rank1), score the test split's raw text with that bundle "
        "(`critic score`, into RUN_DIR/scored) and print the leaderboard, the test accuracy "
        "and the scoring speed. --imdb runs the same sweep on the full aclImdb data.",
    )
    parser.add_argument("--config", type=Path, required=True, help="sweep YAML")
    parser.add_argument("--imdb", metavar="ACLIMDB", help=IMDB_HELP)
    parser.add_argument("--quantize", choices=["int8"], help="also export an int8 model")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for an embedded Ray")
    parser.set_defaults(run=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    import sys

    from critic.orchestrator.config import SweepConfig
    from critic.orchestrator.sweep import SweepInterrupted
    from critic.pipeline import print_report, run_pipeline

    cfg = SweepConfig.load(args.config, imdb=args.imdb)
    try:
        _, report = run_pipeline(cfg, num_cpus=args.num_cpus, quantize=args.quantize)
    except SweepInterrupted as e:
        print(f"critic run: {e}", file=sys.stderr)
        return 130
    print_report(report)
    return 0
