"""One model averaging several trials: ``critic export RUN --ensemble K`` (and a config's
``ensemble: K``).

The members must read the same ids (the same tokenizer JSON: one tokenizer setting of the
sweep). Members of mixed families are nested in one functional model whose output is the
mean of their probabilities. nbsvm members are linear in their ids, so the mean of their
logits is one nbsvm model whose weight table and bias are the means of theirs: the ensemble
costs no more to run than one member (checked against the members' own logits). Either way
the model is exported and verified like any other, so ``Runtime``, ``score`` and ``serve``
load it as one bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from critic.keras_eval import accuracy_on_test

from .sources import ExportSource, SourceError

FOLD_TOLERANCE = 1e-5  # max |probability difference| of a folded ensemble vs its members


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
    work.mkdir(parents=True, exist_ok=True)
    path = work / "model.keras"
    if all(_family(m) == "nbsvm" for m in members):
        ensemble = _folded_nbsvm(models)
        combine = "mean of logits (nbsvm weights averaged into one table)"
    else:
        tokens = keras.Input(shape=models[0].inputs[0].shape[1:], dtype="int32", name="tokens")
        mean = keras.layers.Average(name="probability")([model(tokens) for model in models])
        ensemble = keras.Model(tokens, mean, name="ensemble")
        combine = "mean of probabilities"
    ensemble.save(path)
    trial = {
        "run": first.trial.get("run"),
        "ensemble": [{k: v for k, v in m.trial.items() if k != "run"} for m in members],
        "model": {"family": "ensemble of " + ", ".join(_family(m) for m in members)},
        "combine": combine,
    }
    if first.data is not None and (first.data / "x_test.npy").is_file():  # scored once, as a trial
        trial["test_accuracy"] = accuracy_on_test(ensemble, first.data)
    refits = sum(1 for m in members if m.trial.get("refit"))
    if refits:  # members trained on the validation rows: no validation metrics for it
        trial["refit"] = {"members": refits}
    return ExportSource(path, first.tokenizer_json, first.labels, first.data, trial, first.dataset)


def _family(source: ExportSource) -> str:
    return str(source.trial.get("model", {}).get("family", "?"))


def _folded_nbsvm(models: list):
    """One nbsvm model whose logit is the mean of ``models``' logits: the mean of their
    ratio-scaled weight tables (scales set to 1) and of their biases."""
    import keras

    folded = keras.models.clone_model(models[0])
    tables = [m.get_layer("nb_weights") for m in models]
    table = np.mean([t.weights_per_id.numpy() * t.scales.numpy() for t in tables], axis=0)
    bias = np.mean([m.get_layer("logit").bias.numpy() for m in models], axis=0)
    folded.get_layer("nb_weights").scales.assign(np.ones_like(table))
    folded.get_layer("nb_weights").weights_per_id.assign(table)
    folded.get_layer("logit").bias.assign(bias)
    # The members' own logits on random ids (the identity holds for any ids).
    width, size = int(folded.inputs[0].shape[1]), table.shape[0]
    ids = np.random.default_rng(0).integers(0, size, (256, width), dtype=np.int32)
    ids[:, : width // 2] = 0  # padding, as real rows have
    logits = [keras.Model(m.inputs[0], m.get_layer("logit").output)(ids) for m in models]
    mean = np.mean([np.asarray(x, dtype=np.float64) for x in logits], axis=0)
    if mean.shape[1] == 1:  # sigmoid of the mean logit
        want = 1 / (1 + np.exp(-mean))
    else:  # k classes: softmax of the mean logits
        e = np.exp(mean - mean.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
    got = np.asarray(folded(ids))
    if not np.abs(got - want).max() <= FOLD_TOLERANCE:
        raise SourceError(
            f"the folded nbsvm ensemble differs from its members' mean logit by "
            f"{np.abs(got - want).max():.2e} (> {FOLD_TOLERANCE})"
        )
    return folded
