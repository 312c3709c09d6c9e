"""Run a sweep on Ray Tune: a trainable, a param space, a Tuner; then the leaderboard."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from critic.cluster import connect_ray, in_a_ray_job
from critic.console import verbose
from critic.storage import Location, is_uri, location, pull, push, working_copy

from .config import ConfigError, SweepConfig, to_tune_space
from .leaderboard import METRIC, short_trial_name, write_leaderboard, write_leaderboard_json
from .plots import plot_curves, plot_overview
from .prepare import (
    load_splits,
    prepare_arrays,
    setting_key,
    tokenizer_settings,
    trial_arrays,
    trial_setting,
)
from .progress import TrialLines
from .trainable import train_trial

RunDir = Path | Location  # a run directory: a Path when local
Trainable = Callable[..., None]  # (config, arrays=...) like train_trial

MODE = "max"


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


def param_space(cfg: SweepConfig) -> dict:
    return {
        "model": {k: to_tune_space(v) for k, v in cfg.model.items()},
        "tokenizer": {k: to_tune_space(v) for k, v in cfg.tokenizer_space.items()},
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
    }


def _trainable(cfg: SweepConfig, trainable: Trainable, folders: dict[str, str]):
    """The trainable with its arrays in Ray's object store (put once, read on any node) and
    its resources."""
    from ray import tune

    with_data = tune.with_parameters(trainable, arrays=trial_arrays(folders))
    return tune.with_resources(with_data, _resources(cfg))


def run_sweep(
    cfg: SweepConfig, *, num_cpus: int | None = None, trainable: Trainable = train_trial
) -> RunDir:
    """Prepare data, run the Tuner, write the leaderboard; returns the run directory (a Path
    for local storage, else its Location). ``trainable`` is :func:`~.trainable.train_trial` or
    a function that wraps it.

    ``storage_path`` may be a storage URI: Tune keeps its state and checkpoints there, and
    critic's own files (sweep.json, data/, the leaderboard, plots) are written in a local
    working copy and uploaded beside them."""
    from ray import tune

    _check_storage_path(cfg)
    start = time.perf_counter()
    splits = load_splits(cfg)  # data errors end here, before any run folder exists
    run = _new_run_dir(location(cfg.path(cfg.storage_path)), cfg.name)
    local = working_copy(run)
    local.mkdir(parents=True, exist_ok=True)
    (local / "sweep.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    push(local, run, "sweep.json")
    folders = prepare_arrays(cfg, splits, local / "data")
    push(local, run, "data")
    print(
        f"critic tune: data ready in {time.perf_counter() - start:.1f}s "
        f"(train {len(splits['train'])}, val {len(splits['val'])}, test {len(splits['test'])})"
    )
    connect_ray(num_cpus)
    tuner = tune.Tuner(
        _trainable(cfg, trainable, folders),
        param_space=param_space(cfg),
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
            storage_path=run.uri,
            failure_config=tune.FailureConfig(max_failures=int(cfg.search.get("max_failures", 2))),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=_checkpoints_to_keep(cfg),
                checkpoint_score_attribute=METRIC,
                checkpoint_score_order=MODE,
            ),
            verbose=1 if verbose() else 0,
            callbacks=[] if verbose() else [TrialLines(expected_trials(cfg), cfg.epochs)],
        ),
    )
    results = tuner.fit()
    _require_complete(cfg, run)
    write_results(cfg, run, results)
    return run.local_path if run.is_local else run


def _check_storage_path(cfg: SweepConfig) -> None:
    """Inside ``ray job submit`` the config's folder is Ray's copy of the job's working
    directory (a package cache on the head node): a relative storage_path would put the run
    there, where nobody looks, and lose it with the cache. Refuse it."""
    path = str(cfg.storage_path)
    if in_a_ray_job() and not is_uri(path) and not Path(path).expanduser().is_absolute():
        raise ConfigError(
            f"storage_path {path!r} is relative: inside a Ray job it would resolve into Ray's "
            "package cache for the job's working directory on the head node, not where you "
            "look for it; give an absolute path on storage every node shares, or a storage "
            "URI such as s3://bucket/runs"
        )


def _checkpoints_to_keep(cfg: SweepConfig) -> int | None:
    """Best N checkpoints per trial (2 by default). PBT keeps them all: a trial may continue
    from another's checkpoint of any earlier epoch, which must still exist."""
    if "checkpoints_to_keep" in cfg.search:
        return int(cfg.search["checkpoints_to_keep"])
    return None if cfg.search.get("scheduler") == "pbt" else 2


def _new_run_dir(storage: Location, name: str) -> Location:
    """storage/name, or name-2, name-3, ... when an earlier run already used it (an earlier
    run is continued with --resume, never overwritten or mixed into)."""
    run, n = storage / name, 1
    while (run / "tune").exists() or (run / "sweep.json").exists():
        n += 1
        run = storage / f"{name}-{n}"
    run.make_dirs()
    return run


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ended (Ctrl-C, a stopped job)."""


def expected_trials(cfg: SweepConfig) -> int:
    """Trials the sweep runs: num_samples for each combination of grid values."""
    return cfg.num_samples * math.prod(
        len(next(iter(v.values())))
        for section in (cfg.model, cfg.tokenizer)
        for v in section.values()
        if isinstance(v, dict) and next(iter(v), None) == "grid"
    )


def _require_complete(cfg: SweepConfig, run: Location) -> None:
    """Raise SweepInterrupted unless every trial of the sweep has ended. Read from the
    experiment state Tune saved (the in-memory results mark interrupted trials as ended)."""
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis((run / "tune").uri).trials
    unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
    expected = expected_trials(cfg)
    if unfinished or len(trials) < expected:
        left = max(len(unfinished), expected - len(trials) + len(unfinished))
        raise SweepInterrupted(
            f"sweep interrupted with {left} of {max(expected, len(trials))} trials unfinished;"
            f" continue it with: critic tune --resume {run}"
        )


def resume_sweep(
    run_dir: str | Path | Location, num_cpus: int | None = None, trainable: Trainable = train_trial
) -> RunDir:
    """Continue an interrupted sweep (a local folder or a storage URI) without re-running
    finished trials."""
    from ray import tune

    run = location(run_dir)
    local = working_copy(run)
    if not (run / "sweep.json").is_file():
        raise ConfigError(f"{run}: no sweep.json; is this a `critic tune` run directory?")
    raw = json.loads((run / "sweep.json").read_text())
    # The run holds the prepared arrays: the dataset's files need not exist on this machine
    # (a run of a Ray job names them in the job's working directory, on the head node).
    cfg = SweepConfig.from_dict(
        {k: v for k, v in raw.items() if k != "base_dir"},
        base_dir=Path(raw["base_dir"]),
        check_data=False,
    )
    keys = [setting_key(setting) for setting in tokenizer_settings(cfg)]
    folders = {key: str(pull(run, f"data/{key}", local)) for key in keys}
    connect_ray(num_cpus)
    tuner = tune.Tuner.restore(
        (run / "tune").uri,
        trainable=_trainable(cfg, trainable, folders),
        resume_errored=True,
    )
    results = tuner.fit()
    _require_complete(cfg, run)
    write_results(cfg, run, results)
    return run.local_path if run.is_local else run


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
    score_on_test(local, rows[: cfg.top_k])
    members = ensemble_members(rows[: cfg.top_k], cfg.ensemble)
    refit = cfg.training.get("refit")
    if refit:  # the run's model: rank 1, or each member of its ensemble
        refit_trials(cfg, local, members)
    write_leaderboard(local, rows)
    write_leaderboard_json(cfg, local, rows, failed, [r["trial"] for r in members])
    written = ["leaderboard.csv", "leaderboard.md", "leaderboard.json"]
    try:  # figures are a convenience: the leaderboard, export and scoring go on without them
        written += plot_curves(local, rows[: cfg.top_k])
        written += plot_overview(local, rows)
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


def score_on_test(local: Path, rows: list[dict]) -> None:
    """Each row's best checkpoint (read through Tune's Checkpoint API, from wherever the run
    is stored) scored once, with Keras, on its test arrays."""
    for row in rows:
        with row["checkpoint"].as_directory() as folder:
            row["test_accuracy"] = _test_accuracy(local / row["data"], Path(folder))


def _test_accuracy(data: Path, checkpoint: Path) -> float:
    import keras

    import critic.keras_layers  # noqa: F401  (registers the layers a checkpoint may hold)
    from critic.keras_eval import accuracy_on_test

    model = keras.models.load_model(checkpoint / "model.keras", safe_mode=True)
    return accuracy_on_test(model, data)


def refit_trials(cfg: SweepConfig, local: Path, rows: list[dict]) -> None:
    """Each row's configuration retrained on train + validation for its best epoch count
    (Ray tasks with a trial's resources, on any node, side by side), saved as
    ``refit/rankN/model.keras``, scored once on the test split and recorded in
    ``row["refit"]``."""
    import ray

    from .trainable import refit_model

    resources = _resources(cfg)
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
