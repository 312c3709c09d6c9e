"""A finished sweep's leaderboard: CSV and Markdown for people, JSON for ``critic export``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .config import SweepConfig
from .prepare import folder_labels

METRIC = "val_accuracy"
MODE = "max"  # a higher METRIC is better


def write_leaderboard(run_dir: Path, rows: list[dict], planned_epochs: int) -> None:
    """leaderboard.csv (every setting of every trial) and leaderboard.md, printed: the short
    trial id, family, accuracies, the selected epoch and how many of the ``planned_epochs``
    the trial trained (fewer when the scheduler stopped it early), and only the settings that
    differ between trials."""
    import csv

    keys = sorted({k for r in rows for k in r["params"]})
    f1 = any("test_macro_f1" in r for r in rows)  # k > 2 classes
    header = ["rank", "trial", "val_accuracy", "test_accuracy", *(["test_macro_f1"] if f1 else [])]
    header += ["best_epoch", "epochs", *keys]
    table = [
        [
            i + 1,
            r["trial"],
            f"{r['val_accuracy']:.4f}",
            f"{r['test_accuracy']:.4f}" if "test_accuracy" in r else "",
            *([f"{r['test_macro_f1']:.4f}" if "test_macro_f1" in r else ""] if f1 else []),
            r.get("best_epoch", r["epochs"]),
            r["epochs"],
            *[r["params"].get(k, "") for k in keys],
        ]
        for i, r in enumerate(rows)
    ]
    with open(run_dir / "leaderboard.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(table)
    varying = [
        k for k in keys if k != "family" and len({repr(r["params"].get(k)) for r in rows}) > 1
    ]
    md_header = ["rank", "trial", "family", "val acc", "test acc"]
    md_header += ["test macro-F1"] if f1 else []
    md_header += ["best epoch (trained)", *varying]
    md = ["| " + " | ".join(md_header) + " |", "|" + "---|" * len(md_header)]
    for i, r in enumerate(rows):
        cells = [
            i + 1,
            short_trial_name(r["trial"]),
            r["params"].get("family", ""),
            f"{100 * r['val_accuracy']:.2f} %",
            f"{100 * r['test_accuracy']:.2f} %" if "test_accuracy" in r else "",
            *([f"{r['test_macro_f1']:.4f}" if "test_macro_f1" in r else ""] if f1 else []),
            f"{r.get('best_epoch', r['epochs'])} ({r['epochs']} of {planned_epochs})",
            *[_cell(r["params"].get(k, "")) for k in varying],
        ]
        md.append("| " + " | ".join(str(c) for c in cells) + " |")
    (run_dir / "leaderboard.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))


def short_trial_name(trial: str) -> str:
    """Tune's trial id (``3f2a1_00004``) out of its long folder name."""
    match = re.search(r"_([0-9a-f]{5}_\d{5})(?:_|$)", trial)
    return match.group(1) if match else trial


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_leaderboard_json(
    cfg: SweepConfig,
    run_dir: Path,
    rows: list[dict],
    failed: list[dict] | None = None,
    model: list[str] | None = None,
) -> None:
    """leaderboard.json: what ``critic export`` reads (no Ray needed to read a finished run).
    Paths are relative to the run directory, so a run directory can be moved or copied. A
    trial retrained on train + validation has a ``refit`` entry (what export takes);
    ``model`` lists the trials the run's model averages (the best one alone by default)."""
    trials = [
        {
            "rank": i + 1,
            "trial": r["trial"],
            "val_accuracy": r["val_accuracy"],
            "test_accuracy": r.get("test_accuracy"),
            **({"test_macro_f1": r["test_macro_f1"]} if "test_macro_f1" in r else {}),
            "epochs": r["epochs"],
            "best_epoch": r.get("best_epoch", r["epochs"]),
            "model": r["result"].config["model"],
            "tokenizer": r["result"].config["tokenizer"],
            "checkpoint": r["checkpoint_dir"],
            "data": r["data"],
            **({"refit": r["refit"]} if "refit" in r else {}),
        }
        for i, r in enumerate(rows)
    ]
    doc = {
        "name": cfg.name,
        "metric": METRIC,
        "labels": list(
            folder_labels(run_dir / rows[0]["data"], getattr(cfg.dataset, "labels", None))
        ),
        "dataset": cfg.dataset.model_dump(mode="json"),
        "trials": trials,
        "failed": failed or [],
        "model": model or [r["trial"] for r in rows[:1]],
    }
    (run_dir / "leaderboard.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
