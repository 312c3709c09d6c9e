"""Run a sweep on Ray Tune: a trainable, a param space, a Tuner (new or resumed). What happens
with the finished trials (ranking, test scoring, refits, the leaderboard) is :mod:`.results`."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from critic.cluster import in_a_ray_job, ray_session
from critic.console import verbose
from critic.storage import Location, is_uri, location, pull, push, working_copy

from .config import ConfigError, SweepConfig, to_tune_space
from .leaderboard import METRIC, MODE
from .prepare import load_splits, prepare_arrays, setting_key, tokenizer_settings, trial_arrays
from .progress import TrialLines
from .results import write_results
from .trainable import train_trial, trial_resources

RunDir = Path | Location  # a run directory: a Path when local
Trainable = Callable[..., None]  # (config, arrays=...) like train_trial


def _scheduler(cfg: SweepConfig):
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    name = cfg.search.scheduler
    if name == "asha":
        return ASHAScheduler(
            max_t=cfg.training.epochs, grace_period=cfg.search.grace_period, time_attr="epoch"
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
    if cfg.search.search_alg != "optuna":
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
        "epochs": cfg.training.epochs,
        "batch_size": cfg.training.batch_size,
    }


def _trainable(cfg: SweepConfig, trainable: Trainable, folders: dict[str, str]):
    """The trainable with its arrays in Ray's object store (put once, read on any node) and
    its resources."""
    from ray import tune

    with_data = tune.with_parameters(trainable, arrays=trial_arrays(folders))
    return tune.with_resources(with_data, trial_resources(cfg))


def run_sweep(
    cfg: SweepConfig, *, num_cpus: int | None = None, trainable: Trainable = train_trial
) -> RunDir:
    """Prepare data, run the Tuner, write the leaderboard; returns the run directory (a Path
    for local storage, else its Location). ``trainable`` is :func:`~.trainable.train_trial` or
    a function that wraps it.

    ``storage_path`` may be a storage URI: Tune keeps its state and checkpoints there, and
    critic's own files (sweep.json, data/, the leaderboard, plots) are written in a local
    working copy and uploaded beside them."""
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
    with ray_session(num_cpus):  # an embedded Ray stops before the caller exports and scores
        _finish(cfg, run, _tuner(cfg, run, _trainable(cfg, trainable, folders)))
    return run.local_path if run.is_local else run


def _tuner(cfg: SweepConfig, run: Location, trainable):
    """A new Tuner for the sweep, its results kept under run/tune."""
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space=param_space(cfg),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            num_samples=cfg.search.num_samples,
            scheduler=_scheduler(cfg),
            search_alg=_search_alg(cfg),
            max_concurrent_trials=cfg.search.max_concurrent_trials,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=run.uri,
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=_checkpoints_to_keep(cfg),
                checkpoint_score_attribute=METRIC,
                checkpoint_score_order=MODE,
            ),
            verbose=1 if verbose() else 0,
            callbacks=[] if verbose() else [TrialLines(expected_trials(cfg), cfg.training.epochs)],
        ),
    )


def _finish(cfg: SweepConfig, run: Location, tuner) -> None:
    """Run ``tuner``'s trials, check every one ended, and write the results (refits too)."""
    results = tuner.fit()
    _require_complete(cfg, run)
    write_results(cfg, run, results)


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
    if cfg.search.checkpoints_to_keep is not None:
        return cfg.search.checkpoints_to_keep
    return None if cfg.search.scheduler == "pbt" else 2


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
    return cfg.search.num_samples * math.prod(
        len(next(iter(v.values())))
        for section in (cfg.model, cfg.tokenizer_space)
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
    with ray_session(num_cpus):
        restored = tune.Tuner.restore(
            (run / "tune").uri,
            trainable=_trainable(cfg, trainable, folders),
            resume_errored=True,
        )
        _finish(cfg, run, restored)
    return run.local_path if run.is_local else run
