"""Optional int8 variant: onnxruntime's dynamic quantization."""

from __future__ import annotations

import logging
from pathlib import Path


class QuantizeSkipped(RuntimeError):
    """This model cannot be quantized; the message says why."""


def quantize_int8(src: Path, dst: Path, graph: dict) -> None:
    """Write ``dst``, the int8 dynamic quantization of ``src``, or raise QuantizeSkipped.

    onnxruntime refuses some graphs whose recurrence is an ONNX ``Loop`` (GRU, recurrent
    dropout: "unknown initializers/tensors"); others quantize fine, so it is always tried.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises "pre-processing" on the root logger every time
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    except Exception as e:  # onnxruntime raises assorted types for graphs it cannot quantize
        dst.unlink(missing_ok=True)
        why = " (its recurrence is an ONNX Loop)" if graph["recurrent"] == "loop" else ""
        raise QuantizeSkipped(
            f"int8 skipped: onnxruntime cannot quantize this model{why}: {e}"
        ) from e
    finally:
        root.setLevel(level)
