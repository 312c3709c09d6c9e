"""A finished sweep's figures: learning curves of the top trials, and every trial's curve.

Figures for a report: 150 dpi, whole-number epochs, every trial named in a legend (its short
id, family and best validation accuracy), the best epoch of each curve marked, the sweep's best
trial drawn on top.
"""

from __future__ import annotations

from pathlib import Path

from .leaderboard import short_trial_name

COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss")
DPI = 150
LEGEND_TRIALS = 20  # the overview names at most this many trials (best first)


def history(row: dict):
    """A trial's per-epoch metrics, or its last result alone when Tune kept no history (a
    PBT trial that continued from another trial's checkpoint can have none)."""
    import pandas as pd

    df = row["result"].metrics_dataframe
    if df is not None and all(c in df for c in COLUMNS):
        df = df.dropna(subset=["epoch"])
        if len(df):
            return df
    metrics = row["result"].metrics or {}
    return pd.DataFrame([{c: metrics.get(c, float("nan")) for c in COLUMNS}])


def _best(df) -> tuple[float, float]:
    """(epoch, validation accuracy) of the best epoch (the earliest of equals)."""
    i = df["val_accuracy"].fillna(-1.0).to_numpy().argmax()
    return float(df["epoch"].iloc[i]), float(df["val_accuracy"].iloc[i])


def _label(row: dict, df) -> str:
    _, best = _best(df)
    return f"{short_trial_name(row['trial'])} {row['params'].get('family', '?')} ({best:.3f})"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _whole_epochs(ax) -> None:
    import matplotlib.ticker

    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def curves_figure(rank: int, row: dict):
    """Train vs validation accuracy and loss per epoch of one trial, its best epoch marked."""
    plt = _pyplot()
    df = history(row)
    epoch, best = _best(df)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    for ax, metric in ((ax1, "accuracy"), (ax2, "loss")):
        ax.plot(df["epoch"], df[metric], "o-", label="train")
        ax.plot(df["epoch"], df[f"val_{metric}"], "o-", label="validation")
        ax.axvline(epoch, color="grey", linestyle=":", linewidth=1)
        ax.set(title=metric, xlabel="epoch")
        _whole_epochs(ax)
        ax.grid(alpha=0.3)
    ax1.plot([epoch], [best], "*", color="black", markersize=12, label=f"best epoch ({epoch:g})")
    ax1.legend(loc="lower right")
    fig.suptitle(
        f"#{rank} {row['params'].get('family', '?')}, trial {short_trial_name(row['trial'])}: "
        f"best validation accuracy {best:.4f} at epoch {epoch:g}"
    )
    return fig


def plot_curves(run_dir: Path, rows: list[dict]) -> list[str]:
    """Learning curves of the top trials (``rows`` best first); returns the names written."""
    plt = _pyplot()
    names = []
    for rank, row in enumerate(rows, 1):
        fig = curves_figure(rank, row)
        fig.savefig(run_dir / f"curves_{rank}.png", dpi=DPI)
        plt.close(fig)
        names.append(f"curves_{rank}.png")
    return names


def overview_figure(rows: list[dict]):
    """Every trial's validation accuracy per epoch (``rows`` best first): one colour per
    trial, one marker per family, the best trial drawn thick and on top with its best epoch
    starred; the legend names the best LEGEND_TRIALS trials."""
    plt = _pyplot()
    families = sorted({str(r["params"].get("family", "?")) for r in rows})
    markers = dict(zip(families, "osD^v<>ph*", strict=False))
    colours = plt.cm.viridis_r if len(rows) > 10 else plt.cm.tab10
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    for rank, row in reversed(list(enumerate(rows))):  # the best drawn last: on top
        df = history(row)
        family = str(row["params"].get("family", "?"))
        best = rank == 0
        colour = colours(rank / max(1, len(rows) - 1)) if len(rows) > 10 else colours(rank % 10)
        ax.plot(
            df["epoch"],
            df["val_accuracy"],
            marker=markers.get(family, "o"),
            color=colour,
            linewidth=2.5 if best else 1.2,
            alpha=1.0 if best else 0.75,
            zorder=3 if best else 2,
            label=_label(row, df) if rank < LEGEND_TRIALS else None,
        )
        if best:
            epoch, value = _best(df)
            ax.plot([epoch], [value], "*", color="black", markersize=16, zorder=4)
            ax.annotate(
                f"best: {value:.4f}",
                (epoch, value),
                textcoords="offset points",
                xytext=(8, 8),
                fontsize=9,
            )
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles[::-1],  # drawn worst first: listed best first
        labels[::-1],
        title="trial, family (best val. acc.)",
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    shown = f"; the best {LEGEND_TRIALS} named" if len(rows) > LEGEND_TRIALS else ""
    ax.set(
        title=f"Validation accuracy of {len(rows)} trials{shown}",
        xlabel="epoch",
        ylabel="validation accuracy",
    )
    _whole_epochs(ax)
    ax.grid(alpha=0.3)
    return fig


def plot_overview(run_dir: Path, rows: list[dict]) -> list[str]:
    """overview.png for ``rows`` (best first); returns the name written."""
    plt = _pyplot()
    fig = overview_figure(rows)
    fig.savefig(run_dir / "overview.png", dpi=DPI)
    plt.close(fig)
    return ["overview.png"]


def confusion_figure(report: dict, title: str):
    """A confusion matrix (rows: true class, columns: predicted), each cell's count written
    in it and shaded by its share of the true class's rows."""
    import numpy as np

    plt = _pyplot()
    labels, counts = report["labels"], np.asarray(report["confusion"], dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.55 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, f"{int(count)}", ha="center", va="center", color=colour, fontsize=8)
    ticks = range(len(labels))
    turn = len(labels) * max(len(x) for x in labels) > 40  # long names would overlap
    ax.set_xticks(ticks, labels, rotation=45 if turn else 0, ha="right" if turn else "center")
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    return fig


def plot_confusion(folder: Path, report: dict, title: str, name: str = "confusion.png") -> str:
    """``name`` in ``folder``: :func:`confusion_figure` of a classification report (see
    ``critic.classes.classification_report``); returns the name written."""
    plt = _pyplot()
    fig = confusion_figure(report, title)
    fig.savefig(folder / name, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return name
