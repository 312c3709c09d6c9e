"""Export many bundles at once: a finished run's best trials, or a list of sources."""

from __future__ import annotations

from pathlib import Path

from critic.storage import Location, location, push, working_copy

from .bundler import export_bundle
from .sources import from_run
from .verify import ParityError


def export_run(
    run_dir: str | Path | Location, top: int, out: Path | None = None, quantize: str | None = None
) -> bool:
    """The K best trials of a finished run, to OUT/rank1 .. OUT/rankK (replacing them). OUT
    defaults to the run's bundles/ folder (for a run in object storage: written in its local
    working copy and uploaded)."""
    run = location(run_dir)
    local = working_copy(run)
    folder = out if out is not None else local / "bundles"
    targets = [(s, folder / f"rank{i + 1}") for i, s in enumerate(from_run(run, top))]
    ok = export_all(targets, quantize=quantize, overwrite=True)
    if ok and out is None:
        push(local, run, "bundles")
    return ok


def export_ensemble(
    run_dir: str | Path | Location,
    k: int,
    out: Path | None = None,
    trials: list[str] | None = None,
    **options,
) -> bool:
    """One bundle, ``OUT/ensembleK``, averaging the run's K best trials, or the named
    ``trials`` (each as its refit on train + validation where the run made one; see
    :mod:`.ensemble`). OUT defaults to the run's bundles/ folder, as in :func:`export_run`.
    Returns whether it verified."""
    import tempfile

    from .ensemble import ensemble_source

    run = location(run_dir)
    local = working_copy(run)
    folder = out if out is not None else local / "bundles"
    with tempfile.TemporaryDirectory(prefix="critic-ensemble-") as work:
        source = ensemble_source(from_run(run, k, trials=trials), Path(work))
        # The run's own bundles/ folder is replaced, as export_run does.
        options = {"overwrite": out is None, **options}
        ok = export_all([(source, folder / f"ensemble{k}")], **options)
    if ok and out is None:
        push(local, run, "bundles")
    return ok


def export_all(targets: list, **options) -> bool:
    """Export every (source, out) pair; a failed verification is reported and skipped.
    Returns whether all succeeded."""
    ok = True
    for source, out in targets:
        try:
            report = export_bundle(source, out, **options)
        except ParityError as e:
            print(f"critic export: {out}: verification failed: {e}")
            ok = False
            continue
        print(f"critic export: {report.summary()}")
    return ok
