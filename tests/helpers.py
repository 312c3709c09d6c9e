"""Helpers shared by the tests (not tests themselves): the processes under a process,
waiting for a server to answer, a tiny sweep config on the shipped sample, and an import
blocker for TF/Ray-free checks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from critic.data.sample import sample_path

# A meta-path hook that makes heavy frameworks unimportable, as on a serving box.
BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'tensorflow', 'keras', 'ray', 'tf2onnx', 'torch'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""


def process_tree(root: int) -> list[int]:
    """The processes under ``root`` (its children, theirs, and so on), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        below = children.get(stack.pop(), [])
        found.extend(below)
        stack.extend(below)
    return found


def running(pid: int) -> bool:
    """``pid`` runs (a zombie, which has ended but is not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def ray_temp_dir() -> Iterator[Path]:
    """A temp folder for a Ray started by the test (``RAY_TMPDIR``): short, since Ray's
    socket paths must stay short, and removed after the block."""
    short = Path(tempfile.mkdtemp(prefix="ray-"))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


def exited(proc: subprocess.Popen, log: Path) -> str | None:
    """For :func:`wait_until_healthy`: the log of a server process that has ended."""
    return None if proc.poll() is None else f"it exited:\n{log.read_text()[-4000:]}"


def wait_until_healthy(
    url: str, failed: Callable[[], str | None], timeout: float, every: float = 1.0
) -> None:
    """Poll ``url``/healthz until it answers 200. ``failed()`` says why the server can no
    longer come up (its process ended, its job failed), or None; then, or after ``timeout``
    seconds, the test fails with that message."""
    import pytest

    deadline = time.time() + timeout
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        reason = failed()
        if reason is not None or time.time() > deadline:
            pytest.fail(f"the server at {url} did not start: {reason or 'timed out'}")
        time.sleep(every)


def sample_dataset(**settings) -> dict:
    """A config's dataset section: the shipped sample's files, with ``settings``."""
    return {
        "kind": "files",
        "train": str(sample_path("train")),
        "test": str(sample_path("test")),
        **settings,
    }


def tiny_sweep_config(tmp_path: Path, **overrides) -> dict:
    """Sections given as overrides replace the defaults whole."""
    cfg = {
        "name": "tiny",
        "dataset": sample_dataset(limit=400, seed=5),
        "tokenizer": {"num_words": 1000, "maxlen": 48},
        "model": {
            "family": {"choice": ["lstm", "conv1d"]},
            "embedding_dim": 8,
            "units": {"randint": [4, 9]},
            "filters": 8,
        },
        "search": {"num_samples": 4, "scheduler": "asha", "max_concurrent_trials": 2},
        "training": {"epochs": 2, "batch_size": 64},
        "resources": {"cpu": 1},
        "storage_path": str(tmp_path / "runs"),
        "top_k": 2,
    }
    cfg.update(overrides)
    return cfg


def unloadable_bundle(bundle: Path, dest: Path) -> Path:
    """A copy of ``bundle`` whose model.onnx is not ONNX but whose checksums pass (re-sealed):
    it loads as a bundle and fails only where onnxruntime opens the model."""
    import hashlib
    import json
    import shutil

    from critic.bundle import seal_manifest

    folder = Path(shutil.copytree(bundle, dest))
    garbage = b"this is not an onnx model" * 10
    (folder / "model.onnx").write_bytes(garbage)
    meta = json.loads((folder / "bundle.json").read_text())
    meta["files"]["model.onnx"] = {
        "bytes": len(garbage),
        "sha256": hashlib.sha256(garbage).hexdigest(),
    }
    (folder / "bundle.json").write_bytes(seal_manifest(meta))
    return folder


def post_texts(url: str, texts: list[str], timeout: float = 60) -> dict:
    """POST ``{"texts": texts}`` to a critic serve ``url``'s /predict; its JSON answer."""
    request = urllib.request.Request(
        url + "/predict",
        data=json.dumps({"texts": texts}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
