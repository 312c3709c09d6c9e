"""The code base stays ruff-clean."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_check():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(REPO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_machine_paths_and_no_product_path_outside_the_repo():
    """Nothing names a machine path; the product (package and configs) names no folder beside
    the repository (benchmarks may read the shared data there)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = REPO / name
        if name == "tests/test_style.py" or path.suffix in (".jsonl", ".json", ".parquet", ""):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        needles = ["/work/", "/root/", "/home/"]
        if name.startswith(("critic/", "configs/")):
            needles += ["../shared", "shared/data"]
        offenders += [f"{name}: {n}" for n in needles if n in text]
    assert not offenders
