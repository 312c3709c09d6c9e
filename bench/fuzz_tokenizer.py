"""Long-running fuzzer for the C++ tokenizer (atheris), beyond the test suite's hypothesis run.

Each input is turned into text (or raw bytes) plus tokenizer options; critic must agree with
Keras' own Python implementation, and invalid UTF-8 must give an error or exactly what
``bytes.decode("utf-8", "replace")`` gives, never a crash.

    pip install atheris
    python bench/fuzz_tokenizer.py -max_total_time=600       # libFuzzer flags
"""

from __future__ import annotations

import os
import sys

import atheris

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

with atheris.instrument_imports():
    from critic.kernels import Tokenizer, pad_sequences, text_to_word_sequence

from keras.src.legacy.preprocessing.text import Tokenizer as KerasTokenizer
from keras.src.legacy.preprocessing.text import (
    text_to_word_sequence as keras_text_to_word_sequence,
)

SPECIAL = "ΣσςΑİIıiAZaz '.:^`!,;-\t\n\r\u0301\u0345\u00a0\u200dßẞǅ\u212a😀中"


def _text(fdp: atheris.FuzzedDataProvider, size: int) -> str:
    out = []
    for _ in range(fdp.ConsumeIntInRange(0, size)):
        if fdp.ConsumeBool():
            out.append(SPECIAL[fdp.ConsumeIntInRange(0, len(SPECIAL) - 1)])
        else:
            out.append(chr(fdp.ConsumeIntInRange(0, 0x10FFFF)))
    return "".join(out)


def check_split(fdp: atheris.FuzzedDataProvider) -> None:
    text, filters = _text(fdp, 200), _text(fdp, 6)
    split = _text(fdp, 3) or " "
    lower = fdp.ConsumeBool()
    expected = keras_text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    got = text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    assert got == expected, (text, filters, split, lower)


def check_tokenizer(fdp: atheris.FuzzedDataProvider) -> None:
    corpus = [_text(fdp, 40) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    options = {
        "num_words": fdp.ConsumeIntInRange(0, 10) or None,
        "oov_token": "<OOV>" if fdp.ConsumeBool() else None,
        "char_level": fdp.ConsumeBool(),
        "lower": fdp.ConsumeBool(),
    }
    k, c = KerasTokenizer(**options), Tokenizer(**options)
    k.fit_on_texts(corpus)
    c.fit_on_texts(corpus)
    assert list(c.word_index.items()) == list(k.word_index.items()), (corpus, options)
    seqs = k.texts_to_sequences(corpus)
    assert c.texts_to_sequences(corpus) == seqs
    if seqs:
        maxlen = fdp.ConsumeIntInRange(1, 8)
        assert (c.encode(corpus, maxlen=maxlen) == pad_sequences(seqs, maxlen=maxlen)).all()


def check_bytes(fdp: atheris.FuzzedDataProvider) -> None:
    rows = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)) for _ in range(3)]
    decoded = [r.decode("utf-8", "replace") for r in rows]
    ref, tok = Tokenizer(filters=""), Tokenizer(filters="")
    ref.fit_on_texts(decoded)
    tok.fit_on_texts(rows, errors="replace")
    assert tok.word_index == ref.word_index, rows
    try:
        tok.texts_to_sequences(rows)
    except ValueError as e:
        assert "not valid UTF-8" in str(e)
        assert any(r.decode("utf-8", "replace") != r.decode("utf-8", "ignore") for r in rows)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    (check_split, check_tokenizer, check_bytes)[fdp.ConsumeIntInRange(0, 2)](fdp)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
