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
        description="Print each text's label and probability (of the positive label for a "
        "two-label bundle, of the predicted class for more; --json adds every class's), one "
        "line per text in input order: as a table, or with --json as JSON lines. Texts come from "
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
    width = max(10, *(len(name) for name in runtime.labels))
    shown_p = probabilities if runtime.binary else runtime.top_probability(probabilities)
    for i, (text, p, label) in enumerate(zip(texts, shown_p, labels, strict=True)):
        if args.json:
            row = {"text": text, "label": str(label), "probability": float(p)}
            if not runtime.binary:
                row["probabilities"] = dict(
                    zip(runtime.labels, probabilities[i].tolist(), strict=True)
                )
            print(json.dumps(row))
        else:
            shown = text if len(text) <= 70 else text[:67] + "..."
            print(f"{label:<{width}} {float(p):.3f}  {shown}")
    return 0
