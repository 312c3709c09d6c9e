"""TextVectorizer against the real keras.layers.TextVectorization."""

from __future__ import annotations

import numpy as np
import pytest
from unicode_texts import UNICODE_STRESS, encodable

from critic.kernels import TextVectorizer

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras_layers(keras_text):
    import keras

    return keras.layers


@pytest.fixture(scope="module")
def stress() -> list[str]:
    extra = ["Don't STOP-believing!!", "a.b,c d\u00a0e\tf\ng\rh\x0bi\x0cj", "[UNK] unk"]
    return [t for t in UNICODE_STRESS if encodable(t)] + extra


@pytest.mark.parametrize(("max_tokens", "length"), [(None, 64), (300, 64), (50, None), (3, 8)])
def test_adapt_and_call_match_keras(
    keras_layers, imdb_train, imdb_test, stress, max_tokens, length
):
    corpus = imdb_train[:300] + stress
    layer = keras_layers.TextVectorization(max_tokens=max_tokens, output_sequence_length=length)
    layer.adapt(corpus)
    ours = TextVectorizer(max_tokens=max_tokens, output_sequence_length=length)
    ours.adapt(corpus)
    assert ours.get_vocabulary() == layer.get_vocabulary()
    probe = imdb_test[:200] + stress
    expected = np.asarray(layer(probe))
    got = ours(probe)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_given_vocabulary_matches_keras(keras_layers, imdb_test, stress):
    vocab = ["the", "movie", "film", "é", "don't", "dont", "br"]
    layer = keras_layers.TextVectorization(vocabulary=vocab, output_sequence_length=40)
    ours = TextVectorizer(vocabulary=vocab, output_sequence_length=40)
    assert ours.get_vocabulary() == layer.get_vocabulary()
    probe = imdb_test[:100] + stress
    np.testing.assert_array_equal(ours(probe), np.asarray(layer(probe)))


def test_bad_vocabulary():
    with pytest.raises(ValueError, match="unique"):
        TextVectorizer(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="max_tokens"):
        TextVectorizer(max_tokens=2)
