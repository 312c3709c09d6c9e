"""What gets exported: the best trials of a finished sweep, or one Keras checkpoint.

A sweep's run directory is read through its ``leaderboard.json`` (written by ``critic tune``),
so exporting needs neither Ray nor the orchestrator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.data.datasets import DEFAULT_LABELS
from critic.storage import Location, StorageError, location, pull, working_copy


class SourceError(ValueError):
    """The thing asked to be exported cannot be found or is incomplete."""


@dataclass
class ExportSource:
    """A Keras checkpoint plus everything needed to ship it."""

    checkpoint: Path  # the model.keras file
    tokenizer_json: str
    labels: tuple[str, ...] = DEFAULT_LABELS
    data: Path | None = None  # x_{val,test,train}.npy and y_*.npy from the sweep
    trial: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)


def from_run(
    run_dir: str | Path | Location,
    top: int = 1,
    refit: bool = True,
    trials: list[str] | None = None,
) -> list[ExportSource]:
    """The ``top`` best trials of a finished sweep (a local folder or a storage URI), or the
    named ``trials``, best first; with ``refit``, a trial the run retrained on train +
    validation is that refit. A remote run's files are fetched into its local working copy
    first."""
    run = location(run_dir)
    board = run / "leaderboard.json"
    if not board.is_file():
        raise SourceError(
            f"{run}: no leaderboard.json; is this a finished `critic tune` run directory?"
        )
    if top < 1:
        raise SourceError(f"--top must be >= 1, got {top}")
    doc = json.loads(board.read_text())
    if doc.get("refit") and doc["trials"]:  # a run from before refits were kept per trial
        doc["trials"][0]["refit"] = doc["refit"]
    entries = list(doc["trials"][:top])
    if trials is not None:
        entries = [e for e in doc["trials"] if e["trial"] in trials]
        if len(entries) != len(set(trials)):
            raise SourceError(f"{run}: not every trial of {trials} is on the leaderboard")
    return [_from_entry(run, doc, _as_exported(entry, refit)) for entry in entries]


def _as_exported(entry: dict, refit: bool) -> dict:
    """A leaderboard entry as exported: its refit on train + validation (with ``refit``, when
    the run made one), else the trial's own checkpoint."""
    if not (refit and entry.get("refit")):
        return {k: v for k, v in entry.items() if k != "refit"}
    done = entry["refit"]
    return {
        **entry,
        "checkpoint": done["checkpoint"],
        "test_accuracy": done["test_accuracy"],
        "refit": {k: done[k] for k in ("epochs", "rows")},
    }


def from_checkpoint(path: str | Path, tokenizer: str | Path | None = None) -> ExportSource:
    """One ``model.keras`` (or a checkpoint folder holding one). Inside a sweep's run
    directory the tokenizer and data are found; elsewhere ``tokenizer`` is required."""
    path = Path(path)
    model = path / "model.keras" if path.is_dir() else path
    if not model.is_file():
        raise SourceError(f"{path}: no model.keras here")
    if tokenizer is not None:
        return ExportSource(model, _read_tokenizer(Path(tokenizer)))
    for run_dir in model.resolve().parents:
        board = run_dir / "leaderboard.json"
        if board.is_file():
            doc = json.loads(board.read_text(encoding="utf-8"))
            for entry in doc["trials"]:
                if (run_dir / entry["checkpoint"]).resolve() == model.parent.resolve():
                    return _from_entry(location(run_dir), doc, entry)
    raise SourceError(
        f"{model}: not a checkpoint listed in a sweep's leaderboard.json; "
        "give its tokenizer with --tokenizer FILE"
    )


def _from_entry(run: Location, doc: dict[str, Any], entry: dict[str, Any]) -> ExportSource:
    local = working_copy(run)
    try:
        data = pull(run, entry["data"], local)
        checkpoint = pull(run, f"{entry['checkpoint']}/model.keras", local)
    except StorageError as e:
        raise SourceError(f"{e} (was the run directory pruned?)") from e
    if not checkpoint.is_file():
        raise SourceError(f"{checkpoint}: missing (was the run directory pruned?)")
    return ExportSource(
        checkpoint=checkpoint,
        tokenizer_json=_read_tokenizer(data / "tokenizer.json"),
        labels=tuple(doc.get("labels", DEFAULT_LABELS)),
        data=data,
        trial={
            "run": doc.get("name", run.name),
            **{k: v for k, v in entry.items() if k not in ("checkpoint", "data")},
        },
        dataset=doc.get("dataset", {}),
    )


def _read_tokenizer(path: Path) -> str:
    if not path.is_file():
        raise SourceError(f"{path}: tokenizer JSON not found")
    text = path.read_text(encoding="utf-8")
    from critic.kernels import ImdbIndex, Tokenizer

    try:
        payload = json.loads(text)
        is_index = isinstance(payload, dict) and payload.get("class_name") == "ImdbIndex"
        (ImdbIndex if is_index else Tokenizer).from_json(text)
    except (ValueError, TypeError, KeyError) as e:
        raise SourceError(
            f"{path}: not a Keras/critic Tokenizer JSON or critic ImdbIndex JSON ({e})"
        ) from e
    return text
