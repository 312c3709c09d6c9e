"""One console line per trial event of a sweep, instead of Tune's wide tables."""

from __future__ import annotations

import time

from ray.tune import Callback

from .leaderboard import METRIC


class TrialLines(Callback):
    """``critic tune: [3/8] 3f2a1_00002 lstm: val_accuracy 0.8123 (best, epoch 2 of 3), 41 s``
    when a trial ends; a line when one fails and is retried, or fails for good."""

    def __init__(self, total: int, epochs: int) -> None:
        self.total = total
        self.epochs = epochs
        self.done = 0
        self.started = time.perf_counter()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        result = trial.last_result or {}
        best = (trial.metric_analysis.get(METRIC) or {}).get("max")
        shown = f"{best:.4f}" if isinstance(best, float) else "?"
        stopped = result.get("epoch", "?")
        early = "" if stopped == self.epochs else f", stopped at epoch {stopped} of {self.epochs}"
        print(
            f"critic tune: [{self.done}/{self.total}] {trial.trial_id} {_family(trial)}: "
            f"best {METRIC} {shown}{early}, {result.get('time_total_s', 0):.0f} s",
            flush=True,
        )

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        print(
            f"critic tune: {trial.trial_id} {_family(trial)} failed; retrying from its last "
            "checkpoint",
            flush=True,
        )

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        print(
            f"critic tune: [{self.done}/{self.total}] {trial.trial_id} {_family(trial)} failed "
            "after its retries (see the leaderboard)",
            flush=True,
        )

    def on_experiment_end(self, trials, **info) -> None:
        minutes = (time.perf_counter() - self.started) / 60
        print(f"critic tune: {len(trials)} trials in {minutes:.1f} min", flush=True)


def _family(trial) -> str:
    return str((trial.config.get("model") or {}).get("family", "?"))
