"""critic.kernels.Tokenizer against the real Keras legacy Tokenizer, on real and hostile text."""

from __future__ import annotations

import json

import numpy as np
import pytest
from unicode_texts import UNICODE_STRESS

from critic.kernels import Tokenizer, text_to_word_sequence, tokenizer_from_json

OPTION_SETS = [
    {},
    {"num_words": 1},
    {"num_words": 2},
    {"num_words": 50},
    {"num_words": 50, "oov_token": "<OOV>"},
    {"num_words": 1, "oov_token": "<OOV>"},
    {"oov_token": "<OOV>"},
    {"oov_token": "the"},  # the OOV token is also a frequent word
    {"num_words": 30, "oov_token": "the"},
    {"char_level": True},
    {"char_level": True, "num_words": 20, "oov_token": "?"},
    {"char_level": True, "lower": False},
    {"lower": False},
    {"lower": False, "num_words": 100, "oov_token": "UNK"},
    {"filters": ""},
    {"filters": "", "split": "\n"},
    {"filters": "aeiou", "split": "x"},
    {"filters": "ABC", "lower": True},  # filters apply after lower-casing
    {"filters": "ABC", "lower": False},
    {"filters": "éσ€", "split": " "},
    {"split": "\u3000"},
    {"split": "br"},  # multi-character separator
    {"split": "<br />", "filters": ""},
    {"split": ".", "filters": " "},
    {"split": "😀", "filters": "!?"},
]


def _assert_same_state(k, c) -> None:
    assert list(c.word_index.items()) == list(k.word_index.items())
    assert list(c.word_counts.items()) == list(k.word_counts.items())
    assert dict(c.word_docs) == dict(k.word_docs)
    assert dict(c.index_docs) == dict(k.index_docs)
    assert c.index_word == k.index_word
    assert c.document_count == k.document_count


@pytest.fixture(scope="module")
def corpus(imdb_train) -> list[str]:
    return imdb_train[:300] + UNICODE_STRESS


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: json.dumps(o, ensure_ascii=True))
def test_fit_and_sequences_match_keras(keras_text, corpus, imdb_test, options):
    k = keras_text.Tokenizer(**options)
    c = Tokenizer(**options)
    k.fit_on_texts(corpus)
    c.fit_on_texts(corpus)
    _assert_same_state(k, c)
    probe = imdb_test[:200] + UNICODE_STRESS
    expected = k.texts_to_sequences(probe)
    assert c.texts_to_sequences(probe) == expected
    assert c.sequences_to_texts(expected) == k.sequences_to_texts(expected)


def test_full_sample_matches_keras(keras_text, keras_pad, imdb_train, imdb_test):
    for options in ({"num_words": 5000, "oov_token": "<OOV>"}, {"num_words": 5000}):
        k = keras_text.Tokenizer(**options)
        c = Tokenizer(**options)
        k.fit_on_texts(imdb_train)
        c.fit_on_texts(imdb_train)
        _assert_same_state(k, c)
        ks = k.texts_to_sequences(imdb_test)
        assert c.texts_to_sequences(imdb_test) == ks
        for padding in ("pre", "post"):
            for truncating in ("pre", "post"):
                expected = keras_pad(ks, maxlen=200, padding=padding, truncating=truncating)
                got = c.encode(imdb_test, maxlen=200, padding=padding, truncating=truncating)
                assert got.dtype == np.int32
                np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(c.encode(imdb_test), keras_pad(ks))


def test_incremental_fit_matches_keras(keras_text, imdb_train):
    k = keras_text.Tokenizer(oov_token="<OOV>")
    c = Tokenizer(oov_token="<OOV>")
    for chunk in (imdb_train[:100], imdb_train[100:150], UNICODE_STRESS):
        k.fit_on_texts(chunk)
        c.fit_on_texts(chunk)
        _assert_same_state(k, c)


def test_text_to_word_sequence_matches_keras(keras_text):
    for text in UNICODE_STRESS:
        for lower in (True, False):
            assert text_to_word_sequence(text, lower=lower) == keras_text.text_to_word_sequence(
                text, lower=lower
            )


def test_json_round_trips(keras_text, imdb_train, imdb_test):
    k = keras_text.Tokenizer(num_words=300, oov_token="<OOV>")
    k.fit_on_texts(imdb_train[:200] + UNICODE_STRESS)
    expected = k.texts_to_sequences(imdb_test[:100] + UNICODE_STRESS)

    c = Tokenizer.from_json(k.to_json())  # Keras -> critic
    _assert_same_state(k, c)
    assert c.texts_to_sequences(imdb_test[:100] + UNICODE_STRESS) == expected

    k2 = keras_text.tokenizer_from_json(c.to_json())  # critic -> Keras
    _assert_same_state(k, k2)
    assert k2.texts_to_sequences(imdb_test[:100] + UNICODE_STRESS) == expected
    assert json.loads(c.to_json())["config"].keys() == json.loads(k.to_json())["config"].keys()

    c2 = tokenizer_from_json(c.to_json())  # critic -> critic
    assert c2.texts_to_sequences(imdb_test[:100]) == expected[:100]


def test_unfitted_and_mutated_tokenizers_match_keras(keras_text):
    texts = ["a b c", "b c d", "c d e"]
    k, c = keras_text.Tokenizer(), Tokenizer()
    assert c.texts_to_sequences(texts) == k.texts_to_sequences(texts) == [[], [], []]
    k.fit_on_texts(texts)
    c.fit_on_texts(texts)
    # Users edit word_index and num_words by hand; the C++ table must follow.
    for tok in (k, c):
        tok.word_index["zzz"] = 2
        tok.word_index["a"] = 7
        del tok.word_index["b"]
        tok.num_words = 3
    probe = [*texts, "zzz a"]
    assert c.texts_to_sequences(probe) == k.texts_to_sequences(probe)
    for tok in (k, c):
        tok.num_words = None
        tok.word_index = {"d": 4, "e": 1}
    assert c.texts_to_sequences(texts) == k.texts_to_sequences(texts)


def test_missing_oov_index_raises_instead_of_none():
    # Keras would emit None for unknown words here; critic refuses clearly.
    c = Tokenizer(oov_token="<OOV>")
    c.word_index = {"known": 1}
    assert c.texts_to_sequences(["known"]) == [[1]]
    with pytest.raises(ValueError, match=r"row 1 .*oov_token"):
        c.texts_to_sequences(["known", "known unknown"])


def test_analyzer_runs_in_python_like_keras(keras_text, imdb_train):
    def analyzer(text: str) -> list[str]:
        return text.lower().split()[:50]

    k = keras_text.Tokenizer(num_words=100, oov_token="?", analyzer=analyzer)
    c = Tokenizer(num_words=100, oov_token="?", analyzer=analyzer)
    k.fit_on_texts(imdb_train[:50])
    c.fit_on_texts(imdb_train[:50])
    _assert_same_state(k, c)
    assert c.texts_to_sequences(imdb_train[50:80]) == k.texts_to_sequences(imdb_train[50:80])


def test_constructor_errors_match_keras(keras_text):
    with pytest.raises(TypeError):
        keras_text.Tokenizer(bogus=1)
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        Tokenizer(bogus=1)
    with pytest.raises(ValueError, match="empty separator"):
        keras_text.Tokenizer(split="").fit_on_texts(["a b"])
    with pytest.raises(ValueError, match="empty separator"):
        Tokenizer(split="").fit_on_texts(["a b"])
    with pytest.warns(UserWarning):
        assert Tokenizer(nb_words=5).num_words == 5
