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


def _many_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        df = pd.DataFrame(
            {
                "epoch": [1, 2, 3, 4],
                "accuracy": [0.6, 0.7, 0.8, 0.85],
                "loss": [0.6, 0.5, 0.4, 0.35],
                "val_accuracy": [0.6, 0.8 - i / 100, 0.7, 0.65],
                "val_loss": [0.7, 0.6, 0.55, 0.6],
            }
        )
        trial = f"train_trial_3f2a1_{i:05d}_{i}_family=lstm,units=8_2026-12-03"
        family = "lstm" if i % 2 else "conv1d"
        rows.append({"trial": trial, "params": {"family": family}, "result": TrialResult(df)})
    return rows


def test_the_overview_names_each_trial_best_first_and_marks_the_best():
    from critic.orchestrator.plots import LEGEND_TRIALS, overview_figure

    rows = _many_rows(25)
    fig = overview_figure(rows)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == LEGEND_TRIALS  # one per trial, the best 20 of 25
    assert labels[0] == "3f2a1_00000 conv1d (0.800)" and labels[1].startswith("3f2a1_00001 lstm")
    assert "the best 20 named" in ax.get_title()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
    assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_xydata().tolist() == [[2.0, 0.8]]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_curves_titles_fit_and_name_the_best_epoch(tmp_path):
    from PIL import Image

    from critic.orchestrator.plots import DPI, curves_figure

    rows = _many_rows(2)
    fig = curves_figure(1, rows[0])
    title = fig._suptitle.get_text()
    assert title == ("#1 conv1d, trial 3f2a1_00000: best validation accuracy 0.8000 at epoch 2")
    fig.canvas.draw()
    box = fig._suptitle.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # not clipped
    import matplotlib.pyplot as plt

    plt.close(fig)
    names = plot_curves(tmp_path, rows)
    with Image.open(tmp_path / names[0]) as image:
        assert image.size == (10 * DPI, int(4.2 * DPI))
