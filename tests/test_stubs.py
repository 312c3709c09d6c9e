"""critic/kernels/_core.pyi matches the compiled module: the same public names, and every
function and method with the same parameters (names, order, which have defaults), read from
the signatures pybind11 writes into the docstrings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import critic.kernels._core as core

STUB = Path(core.__file__).with_name("_core.pyi")
if not STUB.is_file():  # an editable install runs the extension from its build folder
    STUB = Path(__file__).resolve().parent.parent / "src" / "critic" / "kernels" / "_core.pyi"
Params = list[tuple[str, bool]]  # (name, has a default)


def _stub_params(fn: ast.FunctionDef) -> Params:
    args = fn.args.args
    defaults = [False] * (len(args) - len(fn.args.defaults)) + [True] * len(fn.args.defaults)
    return [(a.arg, d) for a, d in zip(args, defaults, strict=True) if a.arg != "self"]


def _stub() -> dict[str, Params | None]:
    """name -> parameters (None for classes and attributes); methods as Class.name."""
    out: dict[str, Params | None] = {}
    for node in ast.parse(STUB.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = _stub_params(node)
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out[f"{node.name}.{item.name}"] = _stub_params(item)
        elif isinstance(node, ast.AnnAssign):
            out[node.target.id] = None
    return out


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in [*parts, current] if p.strip()]


def _runtime_params(obj: object, name: str) -> Params:
    if isinstance(obj, property):  # a read-only attribute: no parameters but self
        return []
    first = (obj.__doc__ or "").splitlines()[0]
    match = re.fullmatch(rf"{re.escape(name)}\((.*)\) -> .*", first)
    assert match, f"{name}: no pybind11 signature in its docstring: {first!r}"
    params = []
    for part in _split_top_level(match.group(1)):
        pname = part.split(":", 1)[0].split("=", 1)[0].strip()
        if pname != "self":
            params.append((pname, "=" in part))
    return params


def _runtime() -> dict[str, object]:
    found: dict[str, object] = {"__version__": core.__version__}
    for name in dir(core):
        if name.startswith("_"):
            continue
        obj = getattr(core, name)
        found[name] = obj
        if isinstance(obj, type):
            for method in vars(obj):
                if not method.startswith("_") or method in ("__init__", "__len__"):
                    if method == "__init__" and "__init__(" not in (obj.__init__.__doc__ or ""):
                        continue  # no constructor bound
                    found[f"{name}.{method}"] = getattr(obj, method)
    return found


def test_the_stub_names_exactly_what_the_module_has():
    assert sorted(_stub()) == sorted(_runtime())


def test_every_stub_signature_matches_the_binding():
    runtime = _runtime()
    for name, params in _stub().items():
        if params is not None:
            assert params == _runtime_params(runtime[name], name.rsplit(".", 1)[-1]), name


def test_the_kernel_has_the_projects_version():
    import critic

    assert core.__version__ == critic.__version__
