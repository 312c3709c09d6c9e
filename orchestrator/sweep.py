"""Run a sweep on Ray Tune: a trainable, a param space, a Tuner; then the leaderboard."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from critic.datasets import DEFAULT_LABELS
from critic.raycluster import connect_ray

from .config import ConfigError, SweepConfig, to_tune_space
from .prepare import load_splits, prepare_arrays, setting_key
from .trainable import train_trial

METRIC, MODE = "val_accuracy", "max"


def _resources(cfg: SweepConfig) -> dict[str, float]:
    import ray

    cpu = float(cfg.resources.get("cpu", 1))
    gpu = float(cfg.resources.get("gpu", 0))
    if gpu > 0 and ray.cluster_resources().get("GPU", 0) == 0:
        print("critic tune: no GPU in this Ray cluster; trials run on CPU")
        gpu = 0.0
    return {"cpu": cpu, "gpu": gpu}


def _scheduler(cfg: SweepConfig):
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    name = cfg.search.get("scheduler", "asha")
    if name == "asha":
        return ASHAScheduler(
            max_t=cfg.epochs, grace_period=int(cfg.search.get("grace_period", 1)), time_attr="epoch"
        )
    if name == "pbt":
        # Only the learning rate: a model restored from a checkpoint keeps its architecture.
        return PopulationBasedTraining(
            time_attr="epoch",
            perturbation_interval=1,
            hyperparam_mutations={
                "model": {"learning_rate": to_tune_space(cfg.model["learning_rate"])}
            },
        )
    return None


def _search_alg(cfg: SweepConfig):
    if cfg.search.get("search_alg", "random") != "optuna":
        return None
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as e:
        raise ConfigError("search_alg 'optuna' needs optuna: pip install optuna") from e
    return OptunaSearch()


def param_space(cfg: SweepConfig, folders: dict, extra: dict | None = None) -> dict:
    return {
        "model": {k: to_tune_space(v) for k, v in cfg.model.items()},
        "tokenizer": {k: to_tune_space(v) for k, v in cfg.tokenizer_settings.items()},
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "_data": folders,
        **(extra or {}),
    }


def run_sweep(cfg: SweepConfig, *, extra: dict | None = None, num_cpus: int | None = None) -> Path:
    """Prepare data, run the Tuner, write the leaderboard; returns the run directory."""
    from ray import tune

    run_dir = _new_run_dir(cfg.path(cfg.storage_path).resolve(), cfg.name)
    (run_dir / "sweep.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    start = time.perf_counter()
    splits = load_splits(cfg)
    folders = prepare_arrays(cfg, splits, run_dir / "data")
    print(
        f"critic tune: data ready in {time.perf_counter() - start:.1f}s "
        f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])})"
    )
    connect_ray(num_cpus)
    trainable = tune.with_resources(train_trial, _resources(cfg))
    tuner = tune.Tuner(
        trainable,
        param_space=param_space(cfg, folders, extra),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            num_samples=cfg.num_samples,
            scheduler=_scheduler(cfg),
            search_alg=_search_alg(cfg),
            max_concurrent_trials=int(cfg.search.get("max_concurrent_trials", 2)),
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(run_dir),
            failure_config=tune.FailureConfig(max_failures=int(cfg.search.get("max_failures", 2))),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=_checkpoints_to_keep(cfg),
                checkpoint_score_attribute=METRIC,
                checkpoint_score_order=MODE,
            ),
            verbose=1,
        ),
    )
    results = tuner.fit()
    _require_complete(cfg, run_dir)
    finish(cfg, run_dir, results)
    return run_dir


def _checkpoints_to_keep(cfg: SweepConfig) -> int | None:
    """Best N checkpoints per trial (2 by default). PBT keeps them all: a trial may continue
    from another's checkpoint of any earlier epoch, which must still exist."""
    if "checkpoints_to_keep" in cfg.search:
        return int(cfg.search["checkpoints_to_keep"])
    return None if cfg.search.get("scheduler") == "pbt" else 2


def _new_run_dir(storage: Path, name: str) -> Path:
    """storage/name, or name-2, name-3, ... when an earlier run already used it (an earlier
    run is continued with --resume, never overwritten or mixed into)."""
    run_dir, n = storage / name, 1
    while (run_dir / "tune").exists():
        n += 1
        run_dir = storage / f"{name}-{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ended (Ctrl-C, a stopped job)."""


def _require_complete(cfg: SweepConfig, run_dir: Path) -> None:
    """Raise SweepInterrupted unless every trial of the sweep has ended. Read from the
    experiment state Tune saved (the in-memory results mark interrupted trials as ended)."""
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis(str(run_dir / "tune")).trials
    unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
    expected = cfg.num_samples * math.prod(
        len(next(iter(v.values())))
        for section in (cfg.model, cfg.tokenizer)
        for v in section.values()
        if isinstance(v, dict) and next(iter(v), None) == "grid"
    )
    if unfinished or len(trials) < expected:
        left = max(len(unfinished), expected - len(trials) + len(unfinished))
        raise SweepInterrupted(
            f"sweep interrupted with {left} of {max(expected, len(trials))} trials unfinished;"
            f" continue it with: critic tune --resume {run_dir}"
        )


def resume_sweep(run_dir: Path, num_cpus: int | None = None) -> Path:
    """Continue an interrupted sweep without re-running finished trials."""
    from ray import tune

    run_dir = Path(run_dir).resolve()
    raw = json.loads((run_dir / "sweep.json").read_text())
    cfg = SweepConfig.from_dict(
        {k: v for k, v in raw.items() if k != "base_dir"}, base_dir=Path(raw["base_dir"])
    )
    connect_ray(num_cpus)
    tuner = tune.Tuner.restore(
        str(run_dir / "tune"),
        trainable=tune.with_resources(train_trial, _resources(cfg)),
        resume_errored=True,
    )
    results = tuner.fit()
    _require_complete(cfg, run_dir)
    finish(cfg, run_dir, results)
    return run_dir


def finish(cfg: SweepConfig, run_dir: Path, results) -> None:
    """Leaderboard (CSV + Markdown), the top-k scored once on the test split, plots."""
    import keras

    rows, failed = [], []
    for result in results:
        if result.error is not None or result.metrics is None or METRIC not in result.metrics:
            reason = str(result.error or "reported no metrics").strip().splitlines()[-1]
            failed.append({"trial": result.path.rsplit("/", 1)[-1], "error": reason[:500]})
            continue
        # The history and the last result: a PBT trial that continued from another trial's
        # checkpoint can have a history without its last epochs.
        history = result.metrics_dataframe
        seen = {k: [result.metrics.get(k, 0)] for k in (METRIC, "epoch")}
        for k, values in seen.items():
            if history is not None and k in history:
                values.extend(history[k].dropna())
        rows.append(
            {
                "trial": result.path.rsplit("/", 1)[-1],
                "val_accuracy": float(max(seen[METRIC])),
                "epochs": int(max(seen["epoch"])),
                "result": result,
                "params": {
                    **result.config["model"],
                    **{k: v for k, v in result.config["tokenizer"].items()},
                },
            }
        )
    for f in failed:  # left out of the ranking, never silently
        print(f"critic tune: trial {f['trial']} failed after its retries: {f['error']}")
    if not rows:
        raise RuntimeError(f"no trial finished; see {run_dir / 'tune'}")
    rows.sort(key=lambda r: r["val_accuracy"], reverse=True)
    for i, row in enumerate(rows):
        config = row["result"].config
        row["data"] = run_dir / "data" / setting_key(config["tokenizer"])
        best = row["result"].get_best_checkpoint(METRIC, MODE)
        row["checkpoint"] = Path(best.path)
        if i >= cfg.top_k:
            continue
        x_test, y_test = np.load(row["data"] / "x_test.npy"), np.load(row["data"] / "y_test.npy")
        model = keras.models.load_model(row["checkpoint"] / "model.keras", safe_mode=True)
        p = model.predict(x_test, batch_size=256, verbose=0)[:, 0]
        row["test_accuracy"] = float(((p >= 0.5) == (y_test >= 0.5)).mean())
    write_leaderboard(run_dir, rows)
    write_leaderboard_json(cfg, run_dir, rows, failed)
    plot_curves(run_dir, rows[: cfg.top_k])
    plot_overview(run_dir, rows)


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
    cfg: SweepConfig, run_dir: Path, rows: list[dict], failed: list[dict] | None = None
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
            "model": r["result"].config["model"],
            "tokenizer": r["result"].config["tokenizer"],
            "checkpoint": r["checkpoint"].relative_to(run_dir).as_posix(),
            "data": r["data"].relative_to(run_dir).as_posix(),
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
    (run_dir / "leaderboard.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


def plot_curves(run_dir: Path, rows: list[dict]) -> None:
    """Learning curves (train vs validation accuracy and loss per epoch) of the top trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    for i, row in enumerate(rows):
        df = row["result"].metrics_dataframe
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


def plot_overview(run_dir: Path, rows: list[dict]) -> None:
    """Every trial's validation-accuracy curve, coloured by model family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    families = sorted({str(r["params"].get("family", "?")) for r in rows})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        df = row["result"].metrics_dataframe
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
