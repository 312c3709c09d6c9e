"""The code base stays ruff-clean."""

import ast
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
        if name.startswith(("src/critic/", "configs/")):
            needles += ["../shared", "shared/data"]
        offenders += [f"{name}: {n}" for n in needles if n in text]
    assert not offenders


# What each part of the package may import of critic (imports point down only).
BOTTOM = {
    "critic.data",
    "critic.bundle",
    "critic.cluster",
    "critic.console",
    "critic.storage",
    "critic.keras_layers",
    "critic.keras_eval",
}
AREAS = {"critic.kernels", "critic.orchestrator", "critic.export", "critic.serve"}
MAY_IMPORT = {
    "critic.kernels": {"critic.kernels"},
    "critic.storage": set(),
    "critic.data": {"critic.data", "critic.storage"},
    "critic.bundle": {"critic.bundle", "critic.storage"},
    "critic.console": set(),
    "critic.cluster": {"critic.console"},
    "critic.keras_layers": set(),
    "critic.keras_eval": set(),
    "critic.orchestrator": BOTTOM | {"critic.kernels", "critic.orchestrator"},
    "critic.export": BOTTOM | {"critic.kernels", "critic.export"},
    "critic.serve": BOTTOM | {"critic.kernels", "critic.serve"},
    "critic.pipeline": BOTTOM | AREAS,
    "critic.cli": BOTTOM | AREAS | {"critic", "critic.cli", "critic.pipeline"},
}


def _imports(path: Path, package: str) -> set[str]:
    """Every critic module ``path`` imports (absolute or relative), as critic.<part>."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            elif node.module:
                names = [node.module]
        found |= {".".join(n.split(".")[:2]) for n in names if n.split(".")[0] == "critic"}
    return found


def test_imports_point_down_only():
    wrong = []
    for path in sorted((REPO / "src" / "critic").rglob("*.py")):
        rel = path.relative_to(REPO / "src").with_suffix("")
        module = ".".join(rel.parts)
        part = ".".join(rel.parts[:2])
        if part not in MAY_IMPORT:  # critic/__init__.py, __main__.py
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        package = package.removesuffix(".__init__")
        for imported in _imports(path, package) - MAY_IMPORT[part]:
            wrong.append(f"{rel}: imports {imported}")
    assert not wrong
