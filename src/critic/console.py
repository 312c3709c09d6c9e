"""What reaches the console: critic's own lines, not TensorFlow's, Ray's or Tune's.

By default third-party logs are kept below warnings: TensorFlow's C++ start-up lines (CUDA
probing, CPU features) are swallowed while it is imported, Ray starts quietly with its own logs
at ERROR and its C++ core at FATAL (which also applies to the log files of an embedded Ray),
Tune shows no tables (critic prints one line per finished trial). ``critic --verbose`` brings
them all back.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile

_verbose = False
THIRD_PARTY_LOGGERS = ("tensorflow", "absl", "ray", "ray.tune", "ray.serve", "h5py")


def set_verbose(verbose: bool) -> None:
    """Choose for the whole process (the CLI calls this once, first)."""
    global _verbose
    _verbose = verbose
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ INFO/WARNING/ERROR
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        # Tune's newer console output prints its banner (result folder, TensorBoard hint)
        # even when silent; the classic reporter at verbose=0 prints nothing.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Ray's C++ core in this process writes its warnings to stderr as E-level lines
        # (they stay in the session's log files).
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        quiet_loggers()


def quiet_loggers() -> None:
    """Third-party loggers down to errors (again: some libraries set their own level when
    they are imported, Ray Serve among them)."""
    if not _verbose:
        for name in THIRD_PARTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def verbose() -> bool:
    return _verbose


def ray_logging_level() -> int:
    """The level for ``ray.init(logging_level=...)``."""
    return logging.INFO if _verbose else logging.ERROR


def quiet_import(module: str) -> None:
    """Import ``module`` (TensorFlow) with the process's stderr sent aside: its C++ logs
    before absl is initialised ignore every log level. Shown after all if the import fails."""
    if module not in sys.modules:
        quietly(importlib.import_module, module)
    quiet_loggers()  # TensorFlow and Keras set their own levels on import


def quietly(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the process's stderr (C++ logs included) sent aside,
    unless verbose; what it wrote is shown after all if it raises."""
    if _verbose:
        return fn(*args, **kwargs)
    with _stderr_aside() as aside:
        try:
            return fn(*args, **kwargs)
        except BaseException:
            sys.stderr.flush()
            aside.seek(0)
            os.write(_saved_stderr[-1], aside.read())
            raise


_saved_stderr: list[int] = []


@contextlib.contextmanager
def _stderr_aside():
    sys.stderr.flush()
    saved = os.dup(2)
    _saved_stderr.append(saved)
    with tempfile.TemporaryFile() as aside:
        os.dup2(aside.fileno(), 2)
        try:
            yield aside
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            _saved_stderr.pop()
