"""``critic score``: score corpora on disk or object storage with a bundle
(:mod:`critic.serve.score.local`, or :mod:`critic.serve.score.ray_engine` on Ray actors)."""

from __future__ import annotations

import argparse
import sys

from critic.serve.runtime import BATCH_SIZE
from critic.serve.score.options import ScoreOptions

from .options import add_bundle_options

EXIT_ROW_ERRORS = 3


def register(commands: argparse._SubParsersAction) -> None:
    d = ScoreOptions()
    parser = commands.add_parser(
        "score",
        help="score a corpus on disk (Parquet, CSV/TSV, JSON Lines, text, aclImdb) with a bundle",
        description="Score every review of the inputs with an exported bundle and write id, "
        "probability, label and error (plus --keep-columns) as shards under OUTPUT, in bounded "
        "memory. For a bundle with two labels, probability is that of the positive label; with "
        "k > 2, it is the predicted label's, and a probabilities column lists all k in the "
        "bundle's label order (JSON text in CSV). Exactly once: re-running the same command "
        "after a crash or kill skips the shards already written and ends with exactly the "
        "rows of an uninterrupted run; a changed model or input is refused. Unreadable rows "
        "(null, non-text, invalid UTF-8, broken JSON lines) are written with their error, never "
        f"dropped. Exit code 0: all rows scored; {EXIT_ROW_ERRORS}: some rows have errors; 2: "
        "the job could not run.",
    )
    add_bundle_options(parser)
    parser.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH_OR_URI",
        help="files, folders or globs: local paths or storage URIs (s3://bucket/reviews/*.parquet)",
    )
    parser.add_argument(
        "--output", required=True, metavar="PATH_OR_URI", help="output folder (path or URI)"
    )
    parser.add_argument(
        "--format", choices=["parquet", "csv", "jsonl"], default=d.format, help="shard format"
    )
    parser.add_argument("--text-column", default=d.text_column, help="column with the review")
    parser.add_argument(
        "--id-column",
        help="column copied to `id`, as text (default: the row's position across the inputs, as "
        "text)",
    )
    parser.add_argument(
        "--keep-columns",
        nargs="*",
        default=[],
        metavar="NAME[:NEW_NAME]",
        help="input columns copied to the output, NAME:NEW_NAME to rename one (for "
        "a name that clashes with id, probability, label or error)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help="rows per inference call"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="inference threads (default: all cores)"
    )
    parser.add_argument(
        "--shard-rows", type=int, default=d.shard_rows, help="rows per output shard"
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: a pool of Ray actors on the cluster of a Ray job (or "
        "RAY_ADDRESS), else an embedded local Ray (on one machine, local is faster: starting "
        "Ray costs seconds of CPU)",
    )
    parser.add_argument("--actors", type=int, help="ray engine: scoring actors (CPUs or GPUs)")
    parser.add_argument("--num-cpus", type=int, help="ray engine: CPUs of an embedded Ray")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from critic.serve.score.job import expand_inputs
    from critic.serve.score.local import score_corpus
    from critic.serve.score.options import count_noun

    inputs = expand_inputs(args.input)
    options = ScoreOptions(
        text_column=args.text_column,
        id_column=args.id_column,
        keep_columns=tuple(args.keep_columns),
        format=args.format,
        shard_rows=args.shard_rows,
        variant=args.variant,
    )
    options.validate()
    if args.engine == "ray":  # the actors load the model; this process only needs the bundle
        from critic.bundle import load_bundle
        from critic.serve.score.ray_engine import score_corpus_ray

        bundle = load_bundle(args.model)
        summary = score_corpus_ray(
            bundle,
            inputs,
            args.output,
            options,
            actors=args.actors,
            batch_size=args.batch_size,
            device=args.device,
            num_cpus=args.num_cpus,
            progress=args.progress,
        )
    else:
        from critic.serve import Runtime

        runtime = Runtime.load(
            args.model,
            variant=args.variant,
            device=args.device,
            batch_size=args.batch_size,
            threads=args.threads,
        )
        summary = score_corpus(runtime, inputs, args.output, options, progress=args.progress)
    print(f"critic score: {summary.line()}")
    if summary.errors:
        print(
            f"critic score: {count_noun(summary.errors, 'row')} could not be scored; see the "
            "`error` column",
            file=sys.stderr,
        )
        return EXIT_ROW_ERRORS
    return 0
