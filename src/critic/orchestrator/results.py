"""What a sweep leaves once its trials have ended: the trials ranked by validation accuracy,
the top-k scored once on the test split, the run's model (its best trial or an ensemble)
refit on train + validation when asked, the leaderboard and the plots."""

from __future__ import annotations

import json
import time
from pathlib import Path

from critic.storage import Location, push, working_copy

from .config import SweepConfig
from .leaderboard import (
    METRIC,
    MODE,
    short_trial_name,
    write_leaderboard,
    write_leaderboard_json,
)
from .plots import plot_confusion, plot_curves, plot_overview
from .prepare import folder_labels, setting_key, trial_arrays, trial_setting
from .trainable import trial_resources


def write_results(cfg: SweepConfig, run: Location, results) -> None:
    """The leaderboard (CSV, Markdown, JSON) with the top-k scored once on the test split, and
    the plots; written in the run's working copy and uploaded to the run."""
    local = working_copy(run)
    rows, failed = rank_trials(results)
    for f in failed:  # left out of the ranking, never silently
        print(f"critic tune: trial {f['trial']} failed after its retries: {f['error']}")
    for row in list(rows):
        row["data"] = f"data/{setting_key(trial_setting(row['result'].config))}"
        try:
            checkpoint = row["result"].get_best_checkpoint(METRIC, MODE)
        except RuntimeError:  # a PBT trial can end on another's checkpoint with none of its own
            checkpoint = None
        if checkpoint is None:
            rows.remove(row)
            failed.append({"trial": row["trial"], "error": "finished without a checkpoint"})
            print(f"critic tune: trial {row['trial']} left out: it kept no checkpoint")
            continue
        row["checkpoint"] = checkpoint
        row["checkpoint_dir"] = checkpoint.path[len(run.path.rstrip("/")) + 1 :]
    if not rows:
        raise RuntimeError(f"no trial finished with a checkpoint; see {run / 'tune'}")
    report = score_on_test(local, rows[: cfg.top_k])
    (local / "test_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    members = ensemble_members(rows[: cfg.top_k], cfg.ensemble)
    refit = cfg.training.refit
    if refit:  # the run's model: rank 1, or each member of its ensemble
        refit_trials(cfg, local, members)
    write_leaderboard(local, rows, cfg.training.epochs)
    write_leaderboard_json(cfg, local, rows, failed, [r["trial"] for r in members])
    written = ["leaderboard.csv", "leaderboard.md", "leaderboard.json", "test_report.json"]
    try:  # figures are a convenience: the leaderboard, export and scoring go on without them
        written += plot_curves(local, rows[: cfg.top_k])
        written += plot_overview(local, rows)
        title = f"{short_trial_name(rows[0]['trial'])}: test split ({report['rows']} rows, Keras)"
        written.append(plot_confusion(local, report, title))
    except Exception as e:
        print(f"critic tune: warning: the plots were not written ({type(e).__name__}: {e})")
    if refit:
        written.append("refit")
    for name in written:
        push(local, run, name)


def ensemble_members(rows: list[dict], k: int) -> list[dict]:
    """The run's model: the best trial and, for an ensemble of ``k``, the next best trials
    that read the same ids (an ensemble's members share one tokenizer setting)."""
    best = rows[0]
    same = [r for r in rows[1:] if r["data"] == best["data"]]
    if k > 1 and len(same) < k - 1:
        print(
            f"critic tune: ensemble: {k} asked for, but only {len(same) + 1} of the top trials "
            "read the best trial's ids; the ensemble takes those"
        )
    return [best, *same[: k - 1]]


def rank_trials(results) -> tuple[list[dict], list[dict]]:
    """Finished trials best first (by their best validation accuracy), and the failed ones."""
    rows, failed = [], []
    for result in results:
        if result.error is not None or result.metrics is None or METRIC not in result.metrics:
            reason = str(result.error or "reported no metrics").strip().splitlines()[-1]
            failed.append({"trial": result.path.rsplit("/", 1)[-1], "error": reason[:500]})
            continue
        # The history and the last result: a PBT trial that continued from another trial's
        # checkpoint can have a history without its last epochs.
        history = result.metrics_dataframe
        pairs = [(result.metrics.get(METRIC, 0), result.metrics.get("epoch", 0))]
        if history is not None and METRIC in history and "epoch" in history:
            pairs += list(history[[METRIC, "epoch"]].dropna().itertuples(index=False))
        best, best_epoch = max(pairs, key=lambda p: (p[0], -p[1]))  # earliest best epoch
        rows.append(
            {
                "trial": result.path.rsplit("/", 1)[-1],
                "val_accuracy": float(best),
                "epochs": int(max(epoch for _, epoch in pairs)),
                "best_epoch": int(best_epoch),
                "result": result,
                "params": {**result.config["model"], **result.config["tokenizer"]},
            }
        )
    # Ties (common on small validation splits) go by trial name, so the order does not
    # depend on the order Tune hands the results back in, which differs after a resume.
    rows.sort(key=lambda r: (-r["val_accuracy"], r["trial"]))
    return rows, failed


def score_on_test(local: Path, rows: list[dict]) -> dict:
    """Each row's best checkpoint (read through Tune's Checkpoint API, from wherever the run
    is stored) scored once, with Keras, on its test arrays: its accuracy (and, for k > 2
    classes, macro-F1) in the row. Returns the best row's classification report (see
    ``critic.classes.classification_report``)."""
    best = {}
    for row in rows:
        with row["checkpoint"].as_directory() as folder:
            report = _test_report(local / row["data"], Path(folder))
        row["test_accuracy"] = report["accuracy"]
        if len(report["labels"]) > 2:
            row["test_macro_f1"] = report["macro_f1"]
        best = best or {"trial": row["trial"], **report}
    return best


def _test_report(data: Path, checkpoint: Path) -> dict:
    import keras

    import critic.keras_layers  # noqa: F401  (registers the layers a checkpoint may hold)
    from critic.classes import classification_report
    from critic.keras_eval import predictions_on_test

    model = keras.models.load_model(checkpoint / "model.keras", safe_mode=True)
    truth, predicted = predictions_on_test(model, data)
    return classification_report(truth, predicted, folder_labels(data))


def _test_accuracy(data: Path, checkpoint: Path) -> float:
    return _test_report(data, checkpoint)["accuracy"]


def refit_trials(cfg: SweepConfig, local: Path, rows: list[dict]) -> None:
    """Each row's configuration retrained on train + validation for its best epoch count
    (Ray tasks with a trial's resources, on any node, side by side), saved as
    ``refit/rankN/model.keras``, scored once on the test split and recorded in
    ``row["refit"]``."""
    import ray

    from .trainable import refit_model

    resources = trial_resources(cfg)
    task = ray.remote(refit_model).options(num_cpus=resources["cpu"], num_gpus=resources["gpu"])
    arrays = trial_arrays({row["data"]: str(local / row["data"]) for row in rows})
    shared = {folder: ray.put(data) for folder, data in arrays.items()}  # once per setting
    start = time.perf_counter()
    pending = [
        task.remote(row["result"].config, shared[row["data"]], row["best_epoch"]) for row in rows
    ]
    for rank, (row, blob) in enumerate(zip(rows, ray.get(pending), strict=True), start=1):
        folder = local / "refit" / f"rank{rank}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.keras").write_bytes(blob)
        data = arrays[row["data"]]
        row["refit"] = {
            "epochs": row["best_epoch"],
            "rows": int(len(data["x_train"]) + len(data["x_val"])),
            "checkpoint": f"refit/rank{rank}",
            "test_accuracy": _test_accuracy(local / row["data"], folder),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(
            f"critic tune: refit {short_trial_name(row['trial'])} on train + validation "
            f"({row['refit']['rows']} rows, {row['refit']['epochs']} epochs): test accuracy "
            f"{row['refit']['test_accuracy']:.4f} (before refit {row['test_accuracy']:.4f})"
        )
