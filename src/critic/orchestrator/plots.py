"""A finished sweep's figures: learning curves of the top trials, and every trial's curve."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("epoch", "accuracy", "loss", "val_accuracy", "val_loss")


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


def plot_curves(run_dir: Path, rows: list[dict]) -> list[str]:
    """Learning curves (train vs validation accuracy and loss per epoch) of the top trials;
    returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    for i, row in enumerate(rows):
        df = history(row)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.plot(df["epoch"], df["accuracy"], "o-", label="train")
        ax1.plot(df["epoch"], df["val_accuracy"], "o-", label="validation")
        ax1.set(title="accuracy", xlabel="epoch")
        ax2.plot(df["epoch"], df["loss"], "o-", label="train")
        ax2.plot(df["epoch"], df["val_loss"], "o-", label="validation")
        ax2.set(title="loss", xlabel="epoch")
        for ax in (ax1, ax2):
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax1.legend()
        fig.suptitle(f"#{i + 1} {row['params'].get('family', '')} ({row['trial']})")
        fig.tight_layout()
        fig.savefig(run_dir / f"curves_{i + 1}.png", dpi=80)
        plt.close(fig)
    return [f"curves_{i + 1}.png" for i in range(len(rows))]


def plot_overview(run_dir: Path, rows: list[dict]) -> list[str]:
    """Every trial's validation-accuracy curve, coloured by model family; returns the file
    name written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    families = sorted({str(r["params"].get("family", "?")) for r in rows})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        df = history(row)
        family = str(row["params"].get("family", "?"))
        ax.plot(df["epoch"], df["val_accuracy"], "o-", color=colours[family], alpha=0.7)
    for family in families:
        ax.plot([], [], "o-", color=colours[family], label=family)
    ax.set(
        title=f"sweep: validation accuracy of {len(rows)} trials",
        xlabel="epoch",
        ylabel="validation accuracy",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "overview.png", dpi=80)
    plt.close(fig)
    return ["overview.png"]
