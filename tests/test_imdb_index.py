"""ImdbIndex against keras.datasets.imdb.load_data on an imdb.npz built from the sample.

load_data is run for real; only its download (get_file) is pointed at a local npz written in
the Keras format from the shipped reviews, with the labels replaced by row numbers so the
shuffle can be undone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from critic.kernels import ImdbIndex, pad_sequences

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras_imdb(keras_text, imdb_train, imdb_test, tmp_path_factory):
    from keras.src.datasets import imdb as keras_imdb_module

    ranker = keras_text.Tokenizer()
    ranker.fit_on_texts(imdb_train + imdb_test)  # ranks by frequency, 1-based, like the file
    word_index = dict(ranker.word_index)
    folder = tmp_path_factory.mktemp("imdb")
    (folder / "imdb_word_index.json").write_text(json.dumps(word_index))

    def ranks(texts):
        rows = [[word_index[w] for w in keras_text.text_to_word_sequence(t)] for t in texts]
        arr = np.empty(len(rows), dtype=object)
        arr[:] = rows
        return arr

    np.savez(
        folder / "imdb.npz",
        x_train=ranks(imdb_train),
        y_train=np.arange(len(imdb_train)),
        x_test=ranks(imdb_test),
        y_test=np.arange(len(imdb_test)) + len(imdb_train),
    )
    return keras_imdb_module, folder


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_words": 5000},
        {"num_words": 100, "skip_top": 10},
        {"num_words": 2000, "oov_char": None},
        {"num_words": 2000, "start_char": None, "index_from": 0},
        {"num_words": 1000, "index_from": 5, "oov_char": 4, "start_char": 2},
    ],
)
def test_matches_load_data(keras_imdb, imdb_train, imdb_test, monkeypatch, kwargs):
    module, folder = keras_imdb
    monkeypatch.setattr(module, "get_file", lambda *a, **k: str(folder / "imdb.npz"))
    (x_train, y_train), (x_test, y_test) = module.load_data(**kwargs)
    expected = [None] * (len(imdb_train) + len(imdb_test))
    for x, y in zip([*x_train, *x_test], [*y_train, *y_test], strict=True):
        expected[int(y)] = list(x)

    index = ImdbIndex.from_file(folder / "imdb_word_index.json", **kwargs)
    texts = imdb_train + imdb_test
    assert index.texts_to_sequences(texts) == expected
    # The same ids from the file's ranks (how a sweep on imdb.npz builds its arrays) ...
    with np.load(folder / "imdb.npz", allow_pickle=True) as raw:
        ranks = [*raw["x_train"], *raw["x_test"]]
    assert [index.remap(r) for r in ranks] == expected
    # ... and from an index carried through its JSON (how a bundle carries it).
    assert ImdbIndex.from_json(index.to_json()).texts_to_sequences(texts) == expected
    np.testing.assert_array_equal(
        index.encode(texts, maxlen=300), pad_sequences(expected, maxlen=300)
    )


def test_unknown_words_become_oov(keras_imdb):
    _, folder = keras_imdb
    index = ImdbIndex.from_file(folder / "imdb_word_index.json", num_words=10000)
    the = json.loads((folder / "imdb_word_index.json").read_text())["the"]
    assert index.texts_to_sequences(["The zzqxv!"]) == [[1, the + 3, 2]]
    dropping = ImdbIndex.from_file(folder / "imdb_word_index.json", oov_char=None)
    assert dropping.texts_to_sequences(["The zzqxv!"]) == [[1, the + 3]]
