"""The ``critic`` command line."""

from __future__ import annotations

import argparse
import sys

from critic import __version__, console

from . import export, predict, run, score, serve, tokenizer, tune

# The extra that brings each optional dependency (pyproject.toml).
EXTRAS = {
    "onnxruntime": "cpu",
    "pyarrow": "arrow",
    "botocore": "arrow",
    "tqdm": "cpu",
    "ray": "serve",
    "orjson": "serve",
    "fastapi": "serve",
    "uvicorn": "serve",
    "starlette": "serve",
    "tensorflow": "train",
    "keras": "train",
    "tf2onnx": "train",
    "onnx": "train",
    "yaml": "train",
    "matplotlib": "train",
    "pandas": "train",
    "optuna": "optuna",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="critic",
        description="Train, export and serve fast review-sentiment classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"critic {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's, Ray's and Tune's own logs and tables too",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (tokenizer, tune, run, export, predict, score, serve):
        command.register(commands)
    explain_defaults(parser)
    return parser


def explain_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default: X)`` to every option's help that has a default and does not say
    it already, in every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                explain_defaults(sub)
            continue
        help_text, default = action.help, action.default
        if (
            not action.option_strings
            or help_text in (None, argparse.SUPPRESS)
            or default in (None, False, [], argparse.SUPPRESS)
            or "default" in help_text
        ):
            continue
        action.help = f"{help_text.rstrip()} (default: %(default)s)"


# Commands that load TensorFlow: imported first, with its start-up noise kept off the screen.
NEEDS_TENSORFLOW = ("tune", "run", "export")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console.set_verbose(args.verbose)
    try:
        if args.command in NEEDS_TENSORFLOW:
            console.quiet_import("tensorflow")
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"critic {args.command}: error: this needs {e.name}, which is not installed: "
            f"pip install 'critic[{extra}]'",
            file=sys.stderr,
        )
        return 2
    # critic's user-facing errors are ValueErrors (ConfigError, CorpusError, ...) or OSErrors
    # naming a file; anything else (a TypeError, ...) is a bug and keeps its traceback.
    except (ValueError, OSError) as e:
        print(f"critic {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
