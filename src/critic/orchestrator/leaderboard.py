"""A finished sweep's leaderboard: CSV and Markdown for people, JSON for ``critic export``."""

from __future__ import annotations

import json
from pathlib import Path

from critic.data.datasets import DEFAULT_LABELS

from .config import SweepConfig

METRIC = "val_accuracy"


def write_leaderboard(run_dir: Path, rows: list[dict]) -> None:
    import csv

    keys = sorted({k for r in rows for k in r["params"]})
    header = ["rank", "trial", "val_accuracy", "test_accuracy", "epochs", *keys]
    table = [
        [
            i + 1,
            r["trial"],
            f"{r['val_accuracy']:.4f}",
            f"{r['test_accuracy']:.4f}" if "test_accuracy" in r else "",
            r["epochs"],
            *[r["params"].get(k, "") for k in keys],
        ]
        for i, r in enumerate(rows)
    ]
    with open(run_dir / "leaderboard.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(table)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(str(c) for c in row) + " |" for row in table]
    (run_dir / "leaderboard.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))


def write_leaderboard_json(
    cfg: SweepConfig,
    run_dir: Path,
    rows: list[dict],
    failed: list[dict] | None = None,
    refit: dict | None = None,
) -> None:
    """leaderboard.json: what ``critic export`` reads (no Ray needed to read a finished run).
    Paths are relative to the run directory, so a run directory can be moved or copied."""
    trials = [
        {
            "rank": i + 1,
            "trial": r["trial"],
            "val_accuracy": r["val_accuracy"],
            "test_accuracy": r.get("test_accuracy"),
            "epochs": r["epochs"],
            "best_epoch": r.get("best_epoch", r["epochs"]),
            "model": r["result"].config["model"],
            "tokenizer": r["result"].config["tokenizer"],
            "checkpoint": r["checkpoint_dir"],
            "data": r["data"],
        }
        for i, r in enumerate(rows)
    ]
    doc = {
        "name": cfg.name,
        "metric": METRIC,
        "labels": list(cfg.dataset.get("labels", DEFAULT_LABELS)),
        "dataset": cfg.dataset,
        "trials": trials,
        "failed": failed or [],
    }
    if refit is not None:  # rank 1 retrained on train + validation (what export takes first)
        doc["refit"] = refit
    (run_dir / "leaderboard.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
