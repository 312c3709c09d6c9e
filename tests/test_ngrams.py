"""n-gram ids and bags of ids (texts_to_matrix): the C++ kernel against plain-Python and Keras
references, on the shipped IMDB reviews."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critic.kernels import Ngrams, Tokenizer, pad_sequences
from critic.kernels.ngrams import ID_LIMIT, pack, reference

MODES = ("binary", "count", "freq", "tfidf")


@pytest.fixture(scope="module")
def fitted(imdb_train) -> Tokenizer:
    tok = Tokenizer(num_words=3000, oov_token="<OOV>")
    tok.fit_on_texts(imdb_train)
    return tok


def _word_ids(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    saved, tok.ngrams = tok.ngrams, None
    try:
        return tok.texts_to_sequences(texts)
    finally:
        tok.ngrams = saved


def _reference_ranking(rows: list[list[int]], order: int) -> list[tuple[int, int]]:
    """(key, count) of every n-gram, count descending, ties by first occurrence."""
    counts: dict[int, int] = collections.Counter()
    first: dict[int, int] = {}
    for row in rows:
        for n in range(2, order + 1):
            for i in range(len(row) - n + 1):
                key = pack(tuple(row[i : i + n]))
                if key:
                    counts[key] += 1
                    first.setdefault(key, len(first))
    return sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))


@pytest.mark.parametrize(
    "options",
    [
        {"order": 2},
        {"order": 3},
        {"order": 2, "min_count": 3},
        {"order": 3, "max_ngrams": 500},
        {"order": 2, "max_ngrams": 2000, "distinct": True},
        {"order": 1, "distinct": True},
    ],
)
def test_fitted_ngrams_match_the_python_reference(fitted, imdb_train, imdb_test, options):
    ng = Ngrams.fit(fitted, imdb_train, threads=2, **options)
    ranking = _reference_ranking(_word_ids(fitted, imdb_train), options["order"])
    ranking = [k for k, c in ranking if c >= options.get("min_count", 1)]
    ranking = ranking[: options.get("max_ngrams")]
    assert ng.keys.tolist() == ranking
    assert ng.size == 3000 + len(ranking)
    fitted.ngrams = ng
    try:
        add = reference(ng)
        want = [add(row) for row in _word_ids(fitted, imdb_test)]
        assert fitted.texts_to_sequences(imdb_test, threads=3) == want
        for padding, truncating in (("pre", "pre"), ("post", "post")):
            got = fitted.encode(imdb_test, maxlen=700, padding=padding, truncating=truncating)
            expected = pad_sequences(want, 700, padding=padding, truncating=truncating)
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(fitted.encode(imdb_test), pad_sequences(want))
    finally:
        fitted.ngrams = None
    if options.get("distinct"):
        assert all(len(set(r)) == len(r) for r in want)
    if options["order"] > 1:  # n-grams were added to most reviews
        assert sum(max(r, default=0) >= 3000 for r in want) > len(want) // 2


# 20M buckets: more ids than the kernel's bitset of seen ids tracks (it sorts instead)
@pytest.mark.parametrize(
    "order,buckets,distinct",
    [(2, 1, False), (2, 997, True), (3, 100_000, False), (2, 20_000_000, True)],
)
def test_hashed_ngrams_match_the_python_reference(fitted, imdb_test, order, buckets, distinct):
    fitted.ngrams = Ngrams.hashed(fitted, order, buckets, distinct=distinct)
    try:
        add = reference(fitted.ngrams)
        want = [add(row) for row in _word_ids(fitted, imdb_test)]
        assert fitted.texts_to_sequences(imdb_test) == want
        ids = np.concatenate([np.asarray(r) for r in want])
        assert ids.max() < 3000 + buckets and (ids >= 3000).any()
    finally:
        fitted.ngrams = None


def test_ngrams_travel_in_the_tokenizer_json(fitted, imdb_train, imdb_test):
    fitted.ngrams = Ngrams.fit(fitted, imdb_train, 3, max_ngrams=800, distinct=True)
    try:
        doc = json.loads(fitted.to_json())
        again = Tokenizer.from_json(json.dumps(doc))
        assert again.ngrams.keys.tolist() == fitted.ngrams.keys.tolist()
        np.testing.assert_array_equal(
            again.encode(imdb_test, maxlen=400), fitted.encode(imdb_test, maxlen=400)
        )
    finally:
        fitted.ngrams = None
    doc["ngrams"]["keys_uint64le_base64"] = "abc"
    with pytest.raises(ValueError, match="invalid 'ngrams' section"):
        Tokenizer.from_json(json.dumps(doc))


def test_ngrams_without_num_words_start_after_the_largest_index(imdb_train):
    tok = Tokenizer()
    tok.fit_on_texts(imdb_train[:50])
    ng = Ngrams.fit(tok, imdb_train[:50], 2)
    assert ng.base == len(tok.word_index) + 1


def test_ids_outside_the_packable_range_form_no_ngram():
    assert pack((1, 2)) == (1 << 21) | 2
    assert pack((0, 5)) == 0 and pack((5, ID_LIMIT)) == 0
    tok = Tokenizer()
    tok.word_index = {"a": 1, "huge": ID_LIMIT, "b": 2}
    tok.ngrams = Ngrams.hashed(tok, 2, 10)
    (row,) = tok.texts_to_sequences(["a huge b a b"])
    assert row[:5] == [1, ID_LIMIT, 2, 1, 2]
    assert len(row) == 5 + 2  # (a, huge) and (huge, b) are not formed


@pytest.mark.parametrize(
    "args,message",
    [
        ((4, 10, []), "order must be 1, 2 or 3"),
        ((2, 0, []), "first n-gram id"),
        ((2, 10, [5, 5]), "appears twice"),
        ((2, 10, [0]), "key 0"),
        ((2, 10, [7], 5), "either fitted"),
        ((2, 2**31 - 5, [], 10), "exceed"),
    ],
)
def test_invalid_tables_are_refused(args, message):
    from critic.kernels import _core

    with pytest.raises(ValueError, match=message):
        _core.NgramTable(*args)


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(max_size=60), max_size=12),
    order=st.integers(1, 3),
    distinct=st.booleans(),
    maxlen=st.integers(1, 30),
)
def test_any_text_encodes_like_the_reference(texts, order, distinct, maxlen):
    tok = Tokenizer(num_words=40, oov_token="?")
    tok.fit_on_texts([*texts, "a b c a b c d"])
    tok.ngrams = Ngrams.hashed(tok, order, 13, distinct=distinct) if order > 1 else None
    if tok.ngrams is None:
        tok.ngrams = Ngrams.fit(tok, texts, 1, distinct=distinct)
    add = reference(tok.ngrams)
    want = [add(r) for r in _word_ids(tok, texts)]
    assert tok.texts_to_sequences(texts) == want
    got = tok.encode(texts, maxlen=maxlen)
    np.testing.assert_array_equal(got, pad_sequences(want, maxlen).reshape(len(texts), maxlen))


# -- texts_to_matrix -------------------------------------------------------------------------
@pytest.mark.tf
@pytest.mark.parametrize("options", [{"num_words": 2000}, {"oov_token": "<OOV>"}, {}])
@pytest.mark.parametrize("mode", MODES)
def test_texts_to_matrix_matches_keras(keras_text, imdb_train, imdb_test, options, mode):
    k = keras_text.Tokenizer(**options)
    c = Tokenizer(**options)
    k.fit_on_texts(imdb_train)
    c.fit_on_texts(imdb_train)
    texts = [*imdb_test[:300], "", "!!!", "zzzunseen"]
    expected = k.texts_to_matrix(texts, mode=mode)
    got = c.texts_to_matrix(texts, mode=mode, threads=2)
    assert got.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    seqs = k.texts_to_sequences(texts)
    np.testing.assert_array_equal(
        c.sequences_to_matrix(seqs, mode), k.sequences_to_matrix(seqs, mode)
    )


@pytest.mark.parametrize("mode", MODES)
def test_sparse_and_float32_bags_equal_the_dense_matrix(fitted, imdb_test, mode):
    dense = fitted.texts_to_matrix(imdb_test, mode=mode)
    indptr, indices, values = fitted.texts_to_matrix(imdb_test, mode=mode, sparse=True)
    assert indptr.shape == (len(imdb_test) + 1,) and indptr[-1] == len(indices) == len(values)
    rebuilt = np.zeros_like(dense)
    for i in range(len(imdb_test)):
        row = slice(indptr[i], indptr[i + 1])
        assert np.all(np.diff(indices[row]) > 0)  # ids ascending, each once
        rebuilt[i, indices[row]] = values[row]
    np.testing.assert_array_equal(rebuilt, dense)
    single = fitted.texts_to_matrix(imdb_test, mode=mode, dtype="float32")
    np.testing.assert_array_equal(single, dense.astype(np.float32))


def test_bags_with_ngrams_count_every_id(fitted, imdb_train, imdb_test):
    fitted.ngrams = Ngrams.fit(fitted, imdb_train, 2, max_ngrams=1000)
    try:
        counts = fitted.texts_to_matrix(imdb_test[:100], mode="count")
        rows = fitted.texts_to_sequences(imdb_test[:100])
    finally:
        fitted.ngrams = None
    assert counts.shape == (100, 4000)
    for row, vector in zip(rows, counts, strict=True):
        np.testing.assert_array_equal(vector, np.bincount(row, minlength=4000))


def test_bag_errors_are_clear(fitted):
    with pytest.raises(ValueError, match="Unknown vectorization mode"):
        fitted.texts_to_matrix(["a"], mode="onehot")
    with pytest.raises(ValueError, match="before using tfidf"):
        Tokenizer(num_words=5).texts_to_matrix(["a"], mode="tfidf")
    with pytest.raises(ValueError, match="Specify a dimension"):
        Tokenizer().texts_to_matrix(["a"])
    with pytest.raises(TypeError, match="row 1"):
        fitted.texts_to_matrix(["a", None])


def test_a_trigram_without_its_bigram_is_still_found():
    """Fitted tables skip trigrams whose first bigram missed; a hand-made table that lacks a
    trigram's bigram must still find the trigram."""
    tok = Tokenizer()
    tok.word_index = {"a": 1, "b": 2, "c": 3}
    trigram, bigram = pack((1, 2, 3)), pack((2, 3))
    tok.ngrams = Ngrams(3, 4, np.array([trigram, bigram], dtype=np.uint64))
    assert tok.texts_to_sequences(["a b c"]) == [[1, 2, 3, 5, 4]]  # (b, c), then (a, b, c)
    tok.ngrams = Ngrams(3, 4, np.array([trigram, pack((1, 2))], dtype=np.uint64))
    assert tok.texts_to_sequences(["a b c", "c a b"]) == [[1, 2, 3, 5, 4], [3, 1, 2, 5]]
