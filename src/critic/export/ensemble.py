"""One model averaging several trials: ``critic export RUN --ensemble K``.

The members must read the same ids (the same tokenizer JSON: one tokenizer setting of the
sweep); their Keras models are nested in one functional model whose output is the mean of
theirs, and that model is exported and verified like any other (ONNX == the members' mean
Keras probability), so ``Runtime``, ``score`` and ``serve`` load it as one bundle.
"""

from __future__ import annotations

from pathlib import Path

from .sources import ExportSource, SourceError


def ensemble_source(members: list[ExportSource], work: Path) -> ExportSource:
    """An ExportSource for the mean of ``members`` (its model.keras is written in ``work``)."""
    import keras

    import critic.keras_layers  # noqa: F401  (registers the layers a checkpoint may hold)

    if len(members) < 2:
        raise SourceError(f"an ensemble needs at least 2 members, got {len(members)}")
    first = members[0]
    for m in members[1:]:
        if m.tokenizer_json != first.tokenizer_json:
            raise SourceError(
                f"{m.trial.get('trial', m.checkpoint)} reads other ids than "
                f"{first.trial.get('trial', first.checkpoint)} (another tokenizer setting); "
                "an ensemble's members must share one tokenizer setting"
            )
    models = []
    for i, m in enumerate(members):
        model = keras.models.load_model(m.checkpoint, safe_mode=True, compile=False)
        models.append(keras.Model(model.inputs[0], model.outputs[0], name=f"member{i + 1}"))
    shapes = {tuple(model.inputs[0].shape) for model in models}
    if len(shapes) != 1:
        raise SourceError(f"members take different inputs {sorted(shapes)}")
    tokens = keras.Input(shape=models[0].inputs[0].shape[1:], dtype="int32", name="tokens")
    mean = keras.layers.Average(name="probability")([model(tokens) for model in models])
    work.mkdir(parents=True, exist_ok=True)
    path = work / "model.keras"
    keras.Model(tokens, mean, name="ensemble").save(path)
    trial = {
        "run": first.trial.get("run"),
        "ensemble": [{k: v for k, v in m.trial.items() if k != "run"} for m in members],
        "model": {"family": "ensemble of " + ", ".join(_family(m) for m in members)},
    }
    return ExportSource(path, first.tokenizer_json, first.labels, first.data, trial, first.dataset)


def _family(source: ExportSource) -> str:
    return str(source.trial.get("model", {}).get("family", "?"))
