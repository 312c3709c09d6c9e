"""In CI every dependency is installed, so a skipped test or test module means something is
broken: there a skip is reported as a failure. Outside CI, skips stay skips (a contributor may
run the fast tier without TensorFlow or Ray). Hooks imported by conftest.py."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
WHY = "skipped in CI, where every dependency is installed (a broken install?): "


def _fail_skip(report) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = WHY + str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
