"""Property tests: random (hostile) text through critic and through Keras gives equal ids."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from critic.kernels import Tokenizer, text_to_word_sequence

# Characters that exercise the tricky paths, mixed with arbitrary code points (surrogates
# included: Python str may hold them).
SPECIAL = list("ΣσςΑİIıiAZaz '.:^`!,;-\t\n\r\x0b\u0301\u0345\u00a0\u200dßẞǅ\u212a😀中")
chars = st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=()))
texts = st.text(chars, max_size=60)
separators = st.one_of(st.just(" "), st.text(chars, min_size=1, max_size=3))

SETTINGS = settings(
    max_examples=int(os.environ.get("CRITIC_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(text=texts, filters=st.text(chars, max_size=8), split=separators, lower=st.booleans())
def test_word_sequence(keras_text, text, filters, split, lower):
    expected = keras_text.text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    assert text_to_word_sequence(text, filters=filters, lower=lower, split=split) == expected


@SETTINGS
@given(
    corpus=st.lists(texts, max_size=8),
    probe=st.lists(texts, max_size=5),
    num_words=st.one_of(st.none(), st.integers(0, 12)),
    oov=st.one_of(st.none(), st.sampled_from(["<OOV>", "a", "Σ"])),
    char_level=st.booleans(),
    lower=st.booleans(),
)
def test_tokenizer(keras_text, keras_pad, corpus, probe, num_words, oov, char_level, lower):
    options = {"num_words": num_words, "oov_token": oov, "char_level": char_level, "lower": lower}
    k = keras_text.Tokenizer(**options)
    c = Tokenizer(**options)
    k.fit_on_texts(corpus)
    c.fit_on_texts(corpus)
    assert list(c.word_index.items()) == list(k.word_index.items())
    assert dict(c.word_docs) == dict(k.word_docs)
    seqs = k.texts_to_sequences(probe + corpus)
    assert c.texts_to_sequences(probe + corpus) == seqs
    if seqs:
        np.testing.assert_array_equal(
            c.encode(probe + corpus, maxlen=6, padding="post", truncating="pre"),
            keras_pad(seqs, maxlen=6, padding="post", truncating="pre"),
        )


@SETTINGS
@given(rows=st.lists(st.binary(max_size=40), max_size=6))
def test_invalid_utf8_replaced_like_python(rows):
    decoded = [r.decode("utf-8", "replace") for r in rows]
    ref = Tokenizer(filters="")
    ref.fit_on_texts(decoded)
    tok = Tokenizer(filters="")
    tok.fit_on_texts(rows, errors="replace")
    assert tok.word_index == ref.word_index
    assert tok.texts_to_sequences(rows, errors="replace") == ref.texts_to_sequences(decoded)
    strict_ok = all(_is_utf8(r) for r in rows)
    try:
        tok.texts_to_sequences(rows)
        assert strict_ok
    except ValueError as e:
        assert not strict_ok
        assert "not valid UTF-8" in str(e)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
