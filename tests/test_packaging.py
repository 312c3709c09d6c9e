"""Packaging promises: one import name, no TensorFlow/Ray on the kernel path, a CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ci_guard import IN_CI
from helpers import BLOCKER

import critic

REPO = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=120
    )


def test_kernels_work_without_tensorflow_or_ray():
    result = _run(
        "import critic, critic.kernels as k\n"
        "t = k.Tokenizer(num_words=10, oov_token='?')\n"
        "t.fit_on_texts(['a b c', 'a b'])\n"
        "print(t.encode(['a b z'], maxlen=4).tolist())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'ray'}))\n"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["[[0, 2, 3, 1]]", "[]"]


def test_everything_installs_under_one_name():
    from importlib.metadata import files

    import critic.export
    import critic.kernels
    import critic.orchestrator
    import critic.serve

    assert critic.kernels.Tokenizer.__module__ == "critic.kernels.tokenizer"
    tops = {f.parts[0] for f in files("critic") or []}
    # critic/, its dist-info, the console script (under ..), and for an editable install
    # scikit-build-core's redirect hook.
    allowed = ("critic", "_editable_skbc_critic", "..", "__pycache__")
    stray = {t for t in tops if not t.startswith(allowed)}
    assert not stray, f"generic top-level names in site-packages: {stray}"
    assert tops, "critic's installed file list is empty"


def test_cli_tokenizer_fit_and_encode(tmp_path, imdb_test, keras_text, keras_pad):
    from critic.data.sample import sample_path

    tok_json = tmp_path / "tok.json"
    ids_path = tmp_path / "ids.npy"
    cli = [sys.executable, "-m", "critic", "tokenizer"]
    fit = subprocess.run(
        [*cli, "fit", str(sample_path("train")), "--num-words", "500", "--out", str(tok_json)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fit.returncode == 0, fit.stderr
    enc = subprocess.run(
        [
            *cli,
            "encode",
            str(sample_path("test")),
            "--tokenizer",
            str(tok_json),
            "--maxlen",
            "50",
            "--out",
            str(ids_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert enc.returncode == 0, enc.stderr
    # The JSON loads in Keras and gives the same matrix.
    keras_tok = keras_text.tokenizer_from_json(tok_json.read_text())
    expected = keras_pad(keras_tok.texts_to_sequences(imdb_test), maxlen=50)
    np.testing.assert_array_equal(np.load(ids_path), expected)
    assert json.loads(tok_json.read_text())["config"]["num_words"] == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["tokenizer", "encode", "missing.jsonl", "--tokenizer", "t.json", "--out", "x.npy"],
            "no such file",
        ),
        (["tokenizer", "fit", "notes.xyz", "--out", "t.json"], "no such file"),
    ],
)
def test_cli_errors_are_clear(tmp_path, args, message):
    result = subprocess.run(
        [sys.executable, "-m", "critic", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_a_bug_in_a_command_keeps_its_traceback(monkeypatch):
    """Only critic's user-facing errors get the one-line form; a TypeError is a bug."""
    from critic.cli import main as cli

    def buggy(args):
        return len(None)  # a programming error, not bad input

    parser = cli.build_parser()
    args = parser.parse_args(["tokenizer", "fit", "x.jsonl", "--out", "t.json"])
    args.run = buggy
    monkeypatch.setattr(
        cli, "build_parser", lambda: type("P", (), {"parse_args": lambda s, a: args})()
    )
    with pytest.raises(TypeError, match="has no len"):
        cli.main([])


def test_cli_reports_bad_rows(tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": null}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "critic", "tokenizer", "fit", str(corpus), "--out", "t.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "row 1" in result.stderr and "null" in result.stderr


def test_version():
    assert critic.__version__ != "0+unknown"


# Everything `pip install ".[train,cpu,test]"` brings, imported for real: in CI a broken one
# fails here by name (and any skip elsewhere fails too, see ci_guard.py).
FULL_INSTALL = (
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "ray",
    "ray.tune",
    "ray.serve",
    "fastapi",
    "pyarrow.parquet",
    "yaml",
    "matplotlib",
    "tqdm",
    "optuna",
    "tokenizers",
    "hypothesis",
    "moto.server",
)


@pytest.mark.tf
@pytest.mark.ray
@pytest.mark.parametrize("module", FULL_INSTALL)
def test_the_full_install_imports(module):
    code = f"import {module}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode and not IN_CI and "ModuleNotFoundError" in result.stderr:
        pytest.skip(f"{module} is not installed here")
    assert result.returncode == 0, result.stderr[-2000:]


def test_skips_fail_in_ci(tmp_path):
    """The CI guard turns a skip (e.g. a module-level importorskip of a broken dependency)
    into a failure when CI is set, and leaves it a skip elsewhere."""
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from ci_guard import pytest_make_collect_report, pytest_runtest_makereport\n"
    )
    (tmp_path / "test_mod.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_here')\ndef test_x():\n    pass\n"
    )
    (tmp_path / "test_run.py").write_text(
        "import pytest\ndef test_y():\n    pytest.skip('no GPU')\n"
    )
    cases = (
        ("test_mod.py", "true", 2, "ERROR test_mod.py - skipped in CI"),  # a collection error
        ("test_run.py", "true", 1, "1 failed"),
        ("test_mod.py", "", 5, "1 skipped"),  # pytest: no test ran
        ("test_run.py", "", 0, "1 skipped"),
    )
    for name, ci, code, summary in cases:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name]
        env = {**os.environ, "CI": ci}
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert result.returncode == code, result.stdout
        assert summary in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        ("onnxruntime", ["score", "--model", "B", "--input", "x.jsonl", "--output", "o"], "cpu"),
        ("yaml", ["tune", "--config", "sweep.yaml"], "train"),
        ("ray", ["serve", "--model", "B", "--engine", "ray"], "serve"),
        ("uvicorn", ["serve", "--model", "B"], "serve"),
    ],
)
def test_a_missing_extra_names_the_extra_to_install(tmp_path, sample_bundle, blocked, args, extra):
    """An extra that is not installed is a one-line message naming it, exit 2, no traceback."""
    args = [str(sample_bundle[0]) if a == "B" else a for a in args]
    (tmp_path / "sweep.yaml").write_text("name: x\n")
    (tmp_path / "x.jsonl").write_text('{"text": "fine"}\n')
    block = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] == {blocked!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from critic.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", block, *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"pip install 'critic[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_option_says_what_it_does_and_its_default():
    """--help: every option of every command has a help text; one with a default shows it."""
    import argparse

    from critic.cli.main import build_parser

    def commands(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield name, sub
                    yield from commands(sub)

    checked = 0
    for name, sub in commands(build_parser()):
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings[-1]} has no help"
            if action.default not in (None, False, []):
                assert "default" in action.help, f"{name} {action.option_strings[-1]}"
                checked += 1
    assert checked > 30
    text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "(default: 8000)" in text and "(default: 127.0.0.1)" in text


def _readme_test_command() -> str:
    """The README's test command: the one fenced line that installs the `test` extra."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    found = [line for line in lines if ",test]" in line]
    assert len(found) == 1, lines
    return found[0]


def test_ci_runs_the_readmes_test_command_once_with_ci_set():
    """.ci/run installs once, with the README's install, then runs the README's pytest; CI
    is set, so a skip fails (ci_guard.py)."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    install, test = _readme_test_command().rsplit(" && ", 1)
    steps = [line for line in ci.splitlines() if line and not line.startswith("#")]
    assert install in steps
    assert any(line.startswith(test) for line in steps), test
    assert sum("pip install" in line for line in steps) == 1
    assert "export CI=true" in " ".join(steps)


def test_the_test_tools_are_pinned_exactly():
    """A new release of a test tool (ruff's format, pytest's warnings) cannot turn CI red."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    test = extras["optional-dependencies"]["test"]
    assert test and all("==" in requirement for requirement in test), test
