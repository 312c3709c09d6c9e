"""critic: train, export and serve fast review-sentiment classifiers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("critic")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
