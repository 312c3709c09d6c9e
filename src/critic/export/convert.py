"""Keras -> ONNX with tf2onnx, through a ``tf.function`` (Keras 3 models convert cleanly)."""

from __future__ import annotations

from collections import Counter
from typing import Any

OPSET = 17
INPUT, OUTPUT = "tokens", "probabilities"
_FUSED = ("LSTM", "GRU", "RNN")
_LOOPS = ("Loop", "Scan")


def to_onnx(model: Any, opset: int = OPSET):
    """The ONNX ModelProto of a Keras classifier: input ``tokens`` int32 [batch, maxlen]
    (dynamic batch; a bag model, see :func:`reads_a_bag`, takes any row length), output
    ``probabilities`` float32 [batch, 1]."""
    import tensorflow as tf
    import tf2onnx

    maxlen = None if reads_a_bag(model) else model_maxlen(model)

    @tf.function
    def serve(tokens):
        return {OUTPUT: model(tokens, training=False)}

    spec = [tf.TensorSpec([None, maxlen], tf.int32, name=INPUT)]
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    return proto


def reads_a_bag(model: Any) -> bool:
    """A model that pools its ids as a bag (critic's BagPooling): its output does not depend
    on the row width, so padding can be trimmed before it runs. An ensemble reads a bag
    only when every member does."""
    members = [layer for layer in model.layers if hasattr(layer, "layers")]
    if members:
        return all(reads_a_bag(m) for m in members)
    return any(type(layer).__name__ == "BagPooling" for layer in model.layers)


def model_maxlen(model: Any) -> int:
    shape = tuple(model.inputs[0].shape)
    if len(model.inputs) != 1 or len(shape) != 2 or shape[1] is None:
        raise ValueError(f"expected one input of shape [batch, maxlen], got {shape}")
    return int(shape[1])


def describe_graph(proto) -> dict[str, Any]:
    """Which recurrent ops the converter produced: fused ``LSTM``/``GRU`` ops run fast in
    onnxruntime; a ``Loop`` (GRU, recurrent_dropout, masking) runs step by step."""
    ops = Counter(node.op_type for node in proto.graph.node)
    loops = sorted(op for op in ops if op in _LOOPS)
    fused = sorted(op for op in ops if op in _FUSED)
    return {
        "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "op_types": dict(sorted(ops.items())),
        "recurrent": "loop" if loops else "fused" if fused else "none",
        "recurrent_ops": fused + loops,
    }
