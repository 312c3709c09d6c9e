"""``critic export``: verified ONNX bundles from a sweep's best trials or one checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="export the best trials of a sweep (or one checkpoint) as verified ONNX bundles",
        description="Convert Keras models to ONNX (tf2onnx), check that onnxruntime gives the "
        "same probabilities as Keras on real validation sequences (max |diff| <= 1e-5, no label "
        "flips; else the export fails with the numbers), and write a self-contained bundle: "
        "model.onnx, tokenizer.json, README.md (model card) and bundle.json (metrics, parity, "
        "versions, sha256 of every file). SOURCE is a `critic tune` run directory (exports its "
        "--top K trials to OUT/rank1, OUT/rank2, ...) or a checkpoint folder / model.keras "
        "(exports to OUT).",
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="run directory (a folder or storage URI) or checkpoint"
    )
    parser.add_argument("--out", type=Path, required=True, help="bundle folder (or parent)")
    parser.add_argument("--top", type=int, default=1, help="trials to export from a run")
    parser.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="instead, one bundle (OUT/ensembleK) averaging the run's K best trials (their "
        "refits where the run made them); they must share a tokenizer setting. nbsvm members "
        "fold into one model (mean logit); others average their probabilities",
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        help="tokenizer JSON for a checkpoint outside a run directory (Keras or critic format)",
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        metavar="NAME",
        help="the label names of a checkpoint outside a run directory, in the model's output "
        "order (default: neg pos; k > 2 names for a k-class model)",
    )
    parser.add_argument(
        "--quantize", choices=["int8"], help="also write model.int8.onnx (dynamic quantization)"
    )
    parser.add_argument(
        "--verify-rows", type=int, default=1000, help="sequences compared with Keras"
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (tf2onnx allows <= 18)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing bundles")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from critic.classes import label_problem
    from critic.export.runs import export_all, export_ensemble
    from critic.export.sources import SourceError, from_checkpoint, from_run
    from critic.storage import location

    options = {"verify_rows": args.verify_rows, "opset": args.opset, "overwrite": args.overwrite}
    options["quantize"] = args.quantize
    is_run = (location(args.source) / "leaderboard.json").is_file()
    if args.labels and is_run:
        raise SourceError(f"{args.source}: --labels is for a checkpoint; a run keeps its labels")
    if args.ensemble is not None:
        if not is_run:
            raise SourceError(f"{args.source}: --ensemble needs a `critic tune` run directory")
        return 0 if export_ensemble(args.source, args.ensemble, args.out, **options) else 1
    if is_run:
        sources = from_run(args.source, args.top)
        targets = [(s, args.out / f"rank{i + 1}") for i, s in enumerate(sources)]
    else:
        source = from_checkpoint(args.source, args.tokenizer)
        if args.labels:
            problem = label_problem(args.labels)
            if problem:
                raise SourceError(f"--labels {problem}, got {args.labels}")
            source.labels = tuple(args.labels)
        targets = [(source, args.out)]
    return 0 if export_all(targets, **options) else 1
