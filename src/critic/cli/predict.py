"""``critic predict``: a few texts from the command line or stdin, scored with a bundle."""

from __future__ import annotations

import argparse
import json
import sys

from .options import add_bundle_options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="score texts given on the command line (or one per line on stdin) with a bundle",
        description="Print each text's label and probability of the positive label, one line "
        "per text in input order: as a table, or with --json as JSON lines. Texts come from "
        "the arguments, or, with none given, one per line from stdin. For files of reviews use "
        "critic score.",
    )
    add_bundle_options(parser)
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="reviews to score")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from critic.serve import Runtime

    texts = list(args.texts) or [line.rstrip("\r\n") for line in sys.stdin]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("no text to score: give texts as arguments or one per line on stdin")
    runtime = Runtime.load(args.model, variant=args.variant, device=args.device)
    probabilities = runtime.predict(texts)
    labels = runtime.to_labels(probabilities)
    for text, p, label in zip(texts, probabilities, labels, strict=True):
        if args.json:
            print(json.dumps({"text": text, "label": str(label), "probability": float(p)}))
        else:
            shown = text if len(text) <= 70 else text[:67] + "..."
            print(f"{label:<10} {float(p):.3f}  {shown}")
    return 0
