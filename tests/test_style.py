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


# What each module may import of critic (imports point down only). A module's rule is the
# one of its longest matching name (``critic.serve.score`` -> ``critic.serve``); an import is
# allowed when a listed name is the imported module or one of its packages. Every module of
# the package has a rule, ``__init__.py`` files included.
BOTTOM = {
    "critic.data",
    "critic.bundle",
    "critic.cluster",
    "critic.console",
    "critic.storage",
    "critic.keras_layers",
    "critic.keras_eval",
    "critic.classes",
}
AREAS = {"critic.orchestrator", "critic.export", "critic.serve"}
MAY_IMPORT = {
    # The package root re-exports the runtime lazily (``critic.Runtime``, ``critic.load_bundle``).
    "critic": {"critic.serve", "critic.bundle"},
    "critic.__main__": {"critic.cli"},
    # The ground floor: the compiled kernel and its Python face import nothing else of ours.
    "critic.kernels": {"critic.kernels"},
    "critic.storage": set(),
    "critic.classes": set(),
    "critic.data": {"critic.data", "critic.kernels", "critic.storage", "critic.classes"},
    "critic.bundle": {"critic.bundle", "critic.storage", "critic.classes"},
    "critic.console": set(),
    "critic.cluster": {"critic.console"},
    "critic.keras_layers": set(),
    "critic.keras_eval": {"critic.classes"},
    "critic.orchestrator": BOTTOM | {"critic.kernels", "critic.orchestrator"},
    "critic.export": BOTTOM | {"critic.kernels", "critic.export"},
    "critic.serve": BOTTOM | {"critic.kernels", "critic.serve"},
    "critic.pipeline": BOTTOM | AREAS,
    "critic.cli": BOTTOM | AREAS | {"critic", "critic.kernels", "critic.cli", "critic.pipeline"},
}


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted((REPO / "src" / "critic").rglob("*.py")):
        parts = path.relative_to(REPO / "src").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _rule(module: str) -> str | None:
    """The MAY_IMPORT key that governs ``module``: its longest matching name."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MAY_IMPORT:
            return ".".join(parts[:n])
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every critic module ``path`` imports (absolute or relative; module level or inside a
    function), as a dotted name: ``from .x import y`` gives ``critic.pkg.x.y``, which may
    name a module or a name in one (both are matched by their packages)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                base = [*base, *(node.module.split(".") if node.module else [])]
            else:
                base = (node.module or "").split(".")
            names = [".".join([*base, a.name]) for a in node.names]
        found |= {n for n in names if n.split(".")[0] == "critic"}
    return found


def _allowed(imported: str, allowed: set[str]) -> bool:
    parts = imported.split(".")
    return any(".".join(parts[:n]) in allowed for n in range(1, len(parts) + 1))


def test_every_module_has_an_import_rule():
    assert not [m for m in _modules() if _rule(m) is None]


def test_imports_point_down_only():
    wrong = []
    for module, path in _modules().items():
        allowed = MAY_IMPORT[_rule(module)]
        for imported in sorted(_imports(path, module)):
            if not _allowed(imported, allowed):
                wrong.append(f"{module}: imports {imported}")
    assert not wrong


def test_the_import_rule_sees_relative_imports_of_every_depth(tmp_path):
    """The rule reads what a module really imports: a relative import two levels up from a
    nested module, and a package's __init__, are resolved to their full names."""
    nested = tmp_path / "score.py"
    nested.write_text("from ..orchestrator import sweep\nfrom .runtime import Runtime\n")
    assert _imports(nested, "critic.serve.score") == {
        "critic.orchestrator.sweep",
        "critic.serve.runtime.Runtime",
    }
    assert not _allowed("critic.orchestrator.sweep", MAY_IMPORT[_rule("critic.serve.score")])
    init = tmp_path / "__init__.py"
    init.write_text("from .format import Bundle\n")
    assert _imports(init, "critic.bundle") == {"critic.bundle.format.Bundle"}
