"""Export: Keras checkpoints -> verified ONNX bundles (needs TensorFlow and tf2onnx).

The bundle format and its TF-free loader live in ``critic.bundle``.
"""

from .bundler import ExportReport, export_bundle
from .runs import export_all, export_run
from .sources import ExportSource, SourceError, from_checkpoint, from_run
from .verify import Parity, ParityError

__all__ = [
    "ExportReport",
    "ExportSource",
    "Parity",
    "ParityError",
    "SourceError",
    "export_all",
    "export_bundle",
    "export_run",
    "from_checkpoint",
    "from_run",
]
