"""Export many bundles at once: a finished run's best trials, or a list of sources."""

from __future__ import annotations

from pathlib import Path

from .bundler import export_bundle
from .sources import from_run
from .verify import ParityError


def export_run(run_dir: Path, top: int, out: Path, quantize: str | None = None) -> bool:
    """The K best trials of a finished run, to OUT/rank1 .. OUT/rankK (replacing them)."""
    targets = [(s, out / f"rank{i + 1}") for i, s in enumerate(from_run(run_dir, top))]
    return export_all(targets, quantize=quantize, overwrite=True)


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
