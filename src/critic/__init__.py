"""critic: train, export and serve fast review-sentiment classifiers.

``critic.Runtime.load(bundle)`` is the inference entry point (no TensorFlow, no Ray).
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("critic")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["Runtime", "__version__", "load_bundle"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import critic` (and the CLI) stays light until the runtime is used.
    if name == "Runtime":
        from .serve import Runtime

        return Runtime
    if name == "load_bundle":
        from .bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'critic' has no attribute {name!r}")
