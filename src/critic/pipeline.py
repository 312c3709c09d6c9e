"""The main job (``critic run``), end to end. A sweep -> export of the run's model (its best
trial, or the ensemble of its best trials the config asks for) -> scoring of the test split
with the exported bundle -> the leaderboard, the test accuracy the bundle reaches on raw
text, and the scoring speed."""

from __future__ import annotations

import json

import numpy as np

from critic.data.kinds import dataset_kind
from critic.orchestrator.config import ConfigError, SweepConfig
from critic.orchestrator.leaderboard import short_trial_name
from critic.orchestrator.sweep import run_sweep
from critic.storage import Location, location, working_copy


def run_pipeline(cfg: SweepConfig, *, num_cpus: int | None = None, quantize: str | None = None):
    """Run the whole chain; returns (run_dir, report dict)."""
    from critic.export.runs import export_ensemble, export_run
    from critic.serve import Runtime
    from critic.serve.score.local import score_corpus
    from critic.serve.score.options import ScoreOptions

    kind = dataset_kind(cfg.dataset)
    if kind.test_reviews is None:
        raise ConfigError(
            "critic run scores raw test reviews, and an imdb.npz holds only word ranks: use "
            "critic tune --export-top 1 for it, or give the raw reviews (--imdb ARCHIVE)"
        )
    run_dir = run_sweep(cfg, num_cpus=num_cpus)
    run = location(run_dir)
    local = working_copy(run)
    board = json.loads((run / "leaderboard.json").read_text())
    members = board.get("model", [])
    if len(members) > 1:
        bundle = f"ensemble{len(members)}"
        exported = export_ensemble(run, len(members), trials=members, quantize=quantize)
    else:
        bundle, exported = "rank1", export_run(run, 1, quantize=quantize)
    if not exported:
        raise RuntimeError("the run's model failed verification; see the export message above")
    test_input, id_column, truth = kind.test_reviews(cfg.dataset, cfg.path)
    runtime = Runtime.load(local / "bundles" / bundle)
    options = ScoreOptions(id_column=id_column)
    summary = score_corpus(runtime, [test_input], run / "scored", options)
    accuracy, errors, classes = _test_report(run / "scored", truth, runtime)
    best = board["trials"][0]
    report = {
        "run_dir": run.uri,
        "bundle": (run / "bundles" / bundle).uri,
        "best_trial": best["trial"],
        "ensemble": members if len(members) > 1 else None,
        "val_accuracy": best["val_accuracy"],
        "keras_test_accuracy": _keras_test_accuracy(runtime, best),
        "refit": "refit" in best,
        "bundle_test_accuracy": accuracy,
        "scored_rows": summary.rows,
        "row_errors": errors,
        "rows_per_second": summary.rows_per_second,
        "classes": classes,
    }
    (run / "report.json").write_atomic(json.dumps(report, indent=2).encode())
    _plot_report(run, classes, bundle)
    return run_dir, report


def _plot_report(run: Location, classes: dict, bundle: str) -> None:
    """report_confusion.png: the bundle's confusion matrix on the raw test reviews."""
    from critic.orchestrator.plots import plot_confusion
    from critic.storage import push

    local = working_copy(run)
    title = f"{bundle}: raw test reviews ({classes['rows']} scored)"
    try:  # a figure is a convenience: the report stands without it
        push(local, run, plot_confusion(local, classes, title, "report_confusion.png"))
    except Exception as e:
        print(f"critic run: warning: the confusion plot was not written ({type(e).__name__}: {e})")


def _keras_test_accuracy(runtime, best: dict) -> float:
    """The run's model's Keras test accuracy: a single trial's (or its refit's) from the
    leaderboard, an ensemble's as its export measured it."""
    trial = runtime.bundle.meta["trial"]
    return float((trial if trial.get("ensemble") else best.get("refit", best))["test_accuracy"])


def _test_report(scored: Location, truth, runtime) -> tuple[float, int, dict]:
    """The bundle's accuracy on the scored test split (a row that failed counts as wrong),
    its row errors, and the classification report of the rows it scored."""
    import pyarrow as pa

    from critic.classes import classification_report
    from critic.serve.score.shards import read_shard_table

    shards = sorted(
        (f for f in scored.files(recursive=False) if f.name.startswith("part-")),
        key=lambda f: f.path,
    )
    table = pa.concat_tables([read_shard_table(f, "parquet") for f in shards])
    ok = table.column("error").is_null().to_numpy(zero_copy_only=False)
    ids = table.column("id").to_pylist()
    predicted = np.asarray(table.column("label").to_pylist(), dtype=object)
    expected = np.asarray(truth(ids, runtime.labels), dtype=object)
    correct = (predicted == expected) & ok
    index = {name: i for i, name in enumerate(runtime.labels)}
    classes = classification_report(
        np.array([index[str(t)] for t in expected[ok]], dtype=np.int64),
        np.array([index[str(p)] for p in predicted[ok]], dtype=np.int64),
        runtime.labels,
    )
    return float(correct.sum() / len(ids)), int((~ok).sum()), classes


def print_report(report: dict) -> None:
    refit = ", refit on train + validation" if report.get("refit") else ""
    model = f"best trial {short_trial_name(report['best_trial'])}"
    if report.get("ensemble"):
        names = ", ".join(short_trial_name(t) for t in report["ensemble"])
        model = f"ensemble of {names} (best: validation {100 * report['val_accuracy']:.2f} %)"
        validation = ""
    else:
        validation = f"validation {100 * report['val_accuracy']:.2f} %, "
    print(
        f"critic run: {model}: {validation}test {100 * report['keras_test_accuracy']:.2f} % "
        f"(Keras{refit}), {100 * report['bundle_test_accuracy']:.2f} % "
        f"(exported bundle on raw text, {report['scored_rows']} reviews, "
        f"{report['row_errors']} row errors) scored at "
        f"{report['rows_per_second']:.0f} reviews/s; bundle {report['bundle']}"
    )
    classes = report.get("classes") or {}
    if len(classes.get("labels", ())) > 2:
        mae = classes.get("mean_absolute_error")
        print(
            f"critic run: {len(classes['labels'])} classes: macro-F1 {classes['macro_f1']:.4f}"
            + (f", mean absolute error {mae:.2f}" if mae is not None else "")
            + " (the bundle on raw text; confusion matrix in report_confusion.png)"
        )
