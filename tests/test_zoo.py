"""Every model family builds, trains a batch and predicts; GloVe loading; bad specs."""

from __future__ import annotations

import numpy as np
import pytest

from critic.kernels import Tokenizer
from critic.orchestrator.zoo import FAMILIES, ModelSpec, build_model, load_glove

pytestmark = pytest.mark.tf

pytest.importorskip("keras")

TINY = {"num_words": 300, "maxlen": 40, "embedding_dim": 8, "units": 4, "filters": 4, "hidden": 8}


@pytest.fixture(scope="module")
def batch(imdb_train):
    import json

    from critic.data.sample import sample_path

    lines = sample_path("train").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[:64]]
    tok = Tokenizer(num_words=TINY["num_words"], oov_token="<OOV>")
    tok.fit_on_texts(imdb_train)
    x = tok.encode([r["text"] for r in rows], maxlen=TINY["maxlen"])
    y = np.array([r["label"] for r in rows], dtype=np.float32)
    return tok, x, y


@pytest.mark.parametrize("family", FAMILIES)
def test_family_builds_trains_and_predicts(batch, family):
    _, x, y = batch
    model = build_model(ModelSpec.from_dict({"family": family, **TINY}))
    assert model.inputs[0].name == "tokens" and model.inputs[0].shape == (None, 40)
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    p = model.predict(x[:5], verbose=0)
    assert p.shape == (5, 1) and ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("family", ["lstm", "stacked_lstm", "gru"])
def test_reverse_reads_the_sequence_backwards(batch, family, tmp_path):
    import keras

    _, x, _ = batch
    fwd = build_model(ModelSpec.from_dict({"family": family, **TINY}))
    rev = build_model(ModelSpec.from_dict({"family": family, "reverse": True, **TINY}))
    rev.set_weights(fwd.get_weights())
    expected = fwd.predict(x[:4, ::-1], verbose=0)
    np.testing.assert_allclose(rev.predict(x[:4], verbose=0), expected, rtol=1e-5, atol=1e-6)
    # A reversed model is plain Keras layers: it saves and loads in safe mode.
    rev.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["bilstm", "conv1d", "cnn_lstm", "flatten"])
def test_reverse_is_refused_where_it_would_not_reverse_the_input(family):
    with pytest.raises(ValueError, match="reverse: needs a one-way recurrent family"):
        ModelSpec.from_dict({"family": family, "reverse": True, **TINY})


def test_glove_embeddings(tmp_path, batch):
    tok, x, y = batch
    words = [w for w, i in tok.word_index.items() if 1 < i < 50]
    lines = [f"{w} " + " ".join(f"{(i % 7) / 10:.1f}" for i in range(8)) for w in words[:20]]
    lines.append("notinvocab " + " ".join(["1.0"] * 8))
    glove = tmp_path / "glove.txt"
    glove.write_text("\n".join(lines) + "\n", encoding="utf-8")
    matrix, found = load_glove(glove, tok.word_index, TINY["num_words"], 8)
    assert found == 20 and matrix.shape == (300, 8)
    assert not matrix[0].any()
    spec = ModelSpec.from_dict({"family": "lstm", **TINY, "glove_path": str(glove)})
    frozen = build_model(spec, matrix)
    before = frozen.get_layer("embedding").get_weights()[0].copy()
    np.testing.assert_allclose(before, matrix)
    frozen.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(frozen.get_layer("embedding").get_weights()[0], before)
    tuned = build_model(ModelSpec.from_dict({**spec.__dict__, "glove_trainable": True}), matrix)
    tuned.fit(x, y, epochs=1, verbose=0)
    assert not np.allclose(tuned.get_layer("embedding").get_weights()[0], before)
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{words[0]} 1.0 2.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected 8"):
        load_glove(bad, tok.word_index, 300, 8)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"family": "transformer"}, "family: unknown family"),
        ({"units": 0}, "units: must be >= 1"),
        ({"dropout": 1.5}, "dropout: must be in"),
        ({"embedding_dropout": -0.1}, "embedding_dropout: must be in"),
        ({"colour": "red"}, "colour: unknown key"),
    ],
)
def test_bad_specs_fail_early(config, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec.from_dict(config)


def test_embedding_dropout_drops_whole_channels_in_training_only(batch):
    import keras

    model = build_model(ModelSpec.from_dict({**TINY, "family": "conv1d", "embedding_dropout": 0.5}))
    layer = model.get_layer("embedding_dropout")
    assert isinstance(layer, keras.layers.SpatialDropout1D)
    x = np.ones((4, 10, 8), dtype=np.float32)
    dropped = keras.ops.convert_to_numpy(layer(x, training=True))
    # Each (review, channel) is dropped at every position or kept (scaled by 2) at every one.
    assert set(np.unique(dropped)) <= {0.0, 2.0} and (dropped == 0).any()
    assert (dropped.min(axis=1) == dropped.max(axis=1)).all()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    _, tokens, _ = batch
    first = model.predict(tokens, verbose=0)
    np.testing.assert_array_equal(model.predict(tokens, verbose=0), first)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_with_k_classes(batch, family):
    """Three classes: one softmax output per class, trained with sparse categorical
    cross-entropy on class indices (nbsvm: one-vs-rest ratios per class)."""
    from critic.orchestrator.zoo import nb_ratio

    _, x, y = batch
    y3 = (np.arange(len(y)) % 3).astype(np.float32)
    spec = ModelSpec.from_dict({"family": family, **TINY, "classes": 3})
    ratios = nb_ratio(x, y3, spec.num_words, classes=3) if family == "nbsvm" else None
    model = build_model(spec, ratios=ratios)
    history = model.fit(x, y3, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "accuracy" in history.history
    p = model.predict(x[:5], verbose=0)
    assert p.shape == (5, 3) and ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
