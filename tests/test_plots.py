"""Sweep figures: written for every trial, including one Tune kept no history for."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from critic.orchestrator.plots import history, plot_curves, plot_overview  # noqa: E402


@dataclass
class TrialResult:
    """What the plots read of a ray.tune Result: its history and its last metrics."""

    metrics_dataframe: object
    metrics: dict = field(default_factory=dict)


def _rows() -> list[dict]:
    full = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "accuracy": [0.6, 0.7, 0.8],
            "loss": [0.6, 0.5, 0.4],
            "val_accuracy": [0.55, 0.65, 0.7],
            "val_loss": [0.7, 0.6, 0.55],
        }
    )
    last = {"epoch": 3, "accuracy": 0.8, "loss": 0.4, "val_accuracy": 0.72, "val_loss": 0.5}
    return [
        {"trial": "a", "params": {"family": "lstm"}, "result": TrialResult(full)},
        # A PBT trial that continued from another's checkpoint: no history, a last result.
        {"trial": "b", "params": {"family": "gru"}, "result": TrialResult(pd.DataFrame(), last)},
        {"trial": "c", "params": {"family": "gru"}, "result": TrialResult(None, last)},
    ]


def test_a_trial_without_history_is_plotted_from_its_last_result(tmp_path):
    rows = _rows()
    assert history(rows[1])["val_accuracy"].tolist() == [0.72]
    assert history(rows[0])["epoch"].tolist() == [1, 2, 3]
    plot_curves(tmp_path, rows)
    plot_overview(tmp_path, rows)
    for name in ("curves_1.png", "curves_2.png", "curves_3.png", "overview.png"):
        assert (tmp_path / name).stat().st_size > 1000
