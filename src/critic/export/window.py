"""The padding-skipping variant of a single-LSTM model (``model.window.onnx``).

Keras pads reviews at the front (``padding="pre"``) and the LSTM reads every padding step.
Those steps are the same for every review: after k padding tokens the LSTM state is S(k),
whatever the review. So the model can start each review at S(maxlen - L) and read only its
last L tokens (L >= its real length): exactly the same computation, minus the padding.

The window model takes ``tokens`` int32 [batch, L] (any L), ``h0`` and ``c0`` float32
[batch, units] and returns ``probabilities`` [batch, 1] plus the final ``h`` and ``c`` (the
runtime computes S(k) with it by feeding k padding tokens). Only models of the shape
Input -> Embedding -> (Dropout)* -> LSTM -> (Dropout | Dense)* qualify: one forward LSTM
returning its last state; anything else is exported without a window model.
"""

from __future__ import annotations

from typing import Any

from .convert import INPUT, OUTPUT


def window_layers(model: Any) -> tuple[Any, Any, list, list] | None:
    """(embedding, lstm, layers between them, layers after) for a qualifying model, else None."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not _is_chain(model) or not layers or not isinstance(layers[0], keras.layers.Embedding):
        return None
    embedding = layers[0]
    if getattr(embedding, "mask_zero", False):
        return None
    rest = layers[1:]
    dropout = keras.layers.Dropout
    cut = next((i for i, layer in enumerate(rest) if not isinstance(layer, dropout)), None)
    if cut is None:
        return None
    lstm = rest[cut]
    if type(lstm) is not keras.layers.LSTM or lstm.go_backwards or lstm.return_sequences:
        return None
    if lstm.return_state or getattr(lstm, "stateful", False):
        return None
    after = rest[cut + 1 :]
    if not all(isinstance(x, (keras.layers.Dropout, keras.layers.Dense)) for x in after):
        return None
    return embedding, lstm, rest[:cut], after


def _is_chain(model: Any) -> bool:
    """One input, one output, every layer feeding the next (no branches)."""
    try:
        return (
            len(model.inputs) == 1
            and len(model.outputs) == 1
            and all(len(layer._inbound_nodes) == 1 for layer in model.layers)
        )
    except AttributeError:
        return False


def window_model(model: Any):
    """The Keras window model sharing ``model``'s weights, or None when it does not qualify."""
    import keras

    parts = window_layers(model)
    if parts is None:
        return None
    embedding, lstm, before, after = parts
    units = lstm.units
    tokens = keras.Input(shape=(None,), dtype="int32", name=INPUT)
    h0 = keras.Input(shape=(units,), dtype="float32", name="h0")
    c0 = keras.Input(shape=(units,), dtype="float32", name="c0")
    x = embedding(tokens)
    for layer in before:
        x = layer(x)
    seq_lstm = keras.layers.LSTM.from_config({**lstm.get_config(), "return_state": True})
    out, h, c = seq_lstm(x, initial_state=[h0, c0])
    seq_lstm.set_weights(lstm.get_weights())
    for layer in after:
        out = layer(out)
    return keras.Model([tokens, h0, c0], [out, h, c], name=f"{model.name}_window")


def window_to_onnx(window: Any, opset: int):
    """ONNX of the window model: inputs tokens [batch, time], h0, c0; outputs
    probabilities, h, c (all with dynamic batch and time axes)."""
    import tensorflow as tf
    import tf2onnx

    units = window.inputs[1].shape[-1]

    @tf.function
    def serve(tokens, h0, c0):
        p, h, c = window([tokens, h0, c0], training=False)
        return {OUTPUT: p, "h": h, "c": c}

    spec = [
        tf.TensorSpec([None, None], tf.int32, name=INPUT),
        tf.TensorSpec([None, units], tf.float32, name="h0"),
        tf.TensorSpec([None, units], tf.float32, name="c0"),
    ]
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    return proto
