"""Fused encode: every input container gives the same ids; bad input is refused clearly."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pytest
from unicode_texts import UNICODE_STRESS, encodable

from critic.kernels import Tokenizer, pad_sequences, text_to_word_sequence


@pytest.fixture(scope="module")
def tok(imdb_train) -> Tokenizer:
    t = Tokenizer(num_words=3000, oov_token="<OOV>")
    t.fit_on_texts(imdb_train)
    return t


@pytest.fixture(scope="module")
def texts(imdb_test) -> list[str]:
    return imdb_test[:400] + [t for t in UNICODE_STRESS if encodable(t)]


@pytest.fixture(scope="module")
def expected(tok, texts) -> np.ndarray:
    return pad_sequences(tok.texts_to_sequences(texts), maxlen=120)


def _arrow_variants(texts: list[str]):
    arr = pa.array(texts, pa.string())
    yield "string", arr
    yield "large_string", pa.array(texts, pa.large_string())
    yield "chunked", pa.chunked_array([arr.slice(0, 7), arr.slice(7, 200), arr.slice(207)])
    # A sliced array starts at a non-zero offset inside its buffers.
    padded = pa.array(["x"] * 5 + texts + ["y"] * 3, pa.string())
    yield "sliced", padded.slice(5, len(texts))


def test_containers_agree(tok, texts, expected):
    variants = {
        "list": texts,
        "tuple": tuple(texts),
        "generator": (t for t in texts),
        "numpy str_": np.array(texts),
        "numpy object": np.array(texts, dtype=object),
        "bytes rows": [t.encode("utf-8") for t in texts[:-5]] + texts[-5:],
        **dict(_arrow_variants(texts)),
    }
    for name, data in variants.items():
        got = tok.encode(data, maxlen=120)
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_numpy_bytes_array(tok, imdb_test):
    rows = imdb_test[:50]
    data = np.array([r.encode("utf-8") for r in rows], dtype="S")
    np.testing.assert_array_equal(tok.encode(data, maxlen=64), tok.encode(rows, maxlen=64))


def test_strided_numpy_array(tok, texts, expected):
    arr = np.array(texts + texts)[::2]
    np.testing.assert_array_equal(
        tok.encode(arr[: len(texts) // 2], maxlen=120),
        tok.encode(texts[0::2][: len(texts) // 2], maxlen=120),
    )


def test_threads_and_dtype(tok, texts, expected):
    for threads in (1, 2, 3, 8):
        np.testing.assert_array_equal(tok.encode(texts, maxlen=120, threads=threads), expected)
    wide = tok.encode(texts, maxlen=120, dtype="int64")
    assert wide.dtype == np.int64
    np.testing.assert_array_equal(wide, expected)
    assert tok.encode(texts).shape[1] == max(len(s) for s in tok.texts_to_sequences(texts))


def test_concurrent_callers_share_one_tokenizer(tok, texts, expected):
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(3):
            results.append(tok.encode(texts, maxlen=120))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 12
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_empty_inputs(tok):
    assert tok.encode([], maxlen=10).shape == (0, 10)
    assert tok.encode([], maxlen=None).shape == (0, 0)
    np.testing.assert_array_equal(tok.encode(["", "   ", "!!!"], maxlen=4), np.zeros((3, 4)))
    assert tok.encode(pa.array([], pa.string()), maxlen=3).shape == (0, 3)


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [
        (["ok", None, "ok"], TypeError, "row 1 is None"),
        (["ok", "ok", 5], TypeError, "row 2 has type int"),
        ([["pre", "tokenized"]], TypeError, "row 0 has type list"),
        ([b"ok", b"bad \xff byte"], ValueError, "row 1 is not valid UTF-8"),
        ([b"\xed\xa0\x80"], ValueError, "row 0 is not valid UTF-8"),  # encoded surrogate
    ],
)
def test_bad_rows_name_the_row(tok, rows, error, match):
    with pytest.raises(error, match=match):
        tok.encode(rows, maxlen=5)
    with pytest.raises(error, match=match):
        tok.texts_to_sequences(rows)
    with pytest.raises(error, match=match):
        Tokenizer().fit_on_texts(rows)


def test_arrow_nulls_and_invalid_utf8(tok):
    with pytest.raises(TypeError, match="row 2 is null"):
        tok.encode(pa.array(["a", "b", None]), maxlen=3)
    raw = pa.array([b"fine", b"bro\xffken"], pa.binary()).cast(pa.string(), safe=False)
    with pytest.raises(ValueError, match="row 1 is not valid UTF-8"):
        tok.encode(raw, maxlen=3)
    assert tok.encode(raw, maxlen=3, errors="replace").shape == (2, 3)


def test_replace_matches_python_decoder(tok):
    rows = [b"caf\xc3\xa9 \xff\xfe good", b"\xe2\x82 movie \xf0\x9f", b"\xed\xa0\x80 film"]
    decoded = [r.decode("utf-8", "replace") for r in rows]
    np.testing.assert_array_equal(
        tok.encode(rows, maxlen=8, errors="replace"), tok.encode(decoded, maxlen=8)
    )
    probe = Tokenizer(filters="")
    probe.fit_on_texts(rows, errors="replace")
    reference = Tokenizer(filters="")
    reference.fit_on_texts(decoded)
    assert probe.word_index == reference.word_index


def test_wrong_argument_types(tok):
    with pytest.raises(TypeError, match="not a single str"):
        tok.encode("a single string", maxlen=3)
    with pytest.raises(TypeError):
        tok.encode(np.arange(3), maxlen=3)
    with pytest.raises(ValueError, match="1-D"):
        tok.encode(np.array([["a", "b"]]), maxlen=3)
    with pytest.raises(TypeError, match="string or large_string"):
        tok.encode(pa.array([1, 2]), maxlen=3)
    with pytest.raises(ValueError, match="errors must be"):
        tok.encode(["a"], maxlen=3, errors="ignore")
    with pytest.raises(ValueError, match="dtype"):
        tok.encode(["a"], maxlen=3, dtype="float32")
    with pytest.raises(ValueError, match="threads"):
        tok.encode(["a"], maxlen=3, threads=0)
    with pytest.raises(ValueError, match="Padding type"):
        tok.encode(["a"], maxlen=3, padding="middle")


def test_huge_text(tok):
    # ~100 MB in one row: one block per 64 KiB, bounded scratch memory, exact ids.
    unit = "A great film, truly great. "
    text = unit * (100_000_000 // len(unit))
    ids = tok.texts_to_sequences([unit])[0]
    got = tok.encode([text], maxlen=1000)
    np.testing.assert_array_equal(got[0], np.array((ids * (1000 // len(ids) + 1))[-1000:]))
    # One 50 MB token with no separator at all.
    assert tok.encode(["x" * 50_000_000], maxlen=2).tolist() == [[0, 1]]


def test_long_mixed_tokens_cross_buffer_growth():
    # Regression (found by the atheris fuzzer): a non-ASCII character can leave the token
    # buffer just past the ASCII loop's capacity mark; the ASCII bytes that follow must
    # grow the buffer, not write past it.
    texts = [("é" * k + "a" * 300 + " x ") * 2 for k in range(1, 80)]
    texts += ["\U0003ad15" + "\x00" * 200, "Ω" * 40 + "b" * 1000]
    expected = [[w for w in t.split(" ") if w] for t in texts]
    assert [text_to_word_sequence(t, filters="", lower=False) for t in texts] == expected
    tok = Tokenizer(filters="", lower=False)
    tok.fit_on_texts(texts)
    assert set(tok.word_index) == {w for row in expected for w in row}


@pytest.mark.parametrize("oov", [None, "<OOV>"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_truncation_shortcut_matches_full_lookup(imdb_train, imdb_test, oov, truncating):
    # encode looks up only the words that can reach a row; dropped (unknown) words must
    # still be skipped over correctly at every maxlen, including span boundaries.
    tok = Tokenizer(num_words=300, oov_token=oov)
    tok.fit_on_texts(imdb_train)
    seqs = tok.texts_to_sequences(imdb_test[:150])
    for maxlen in (1, 2, 63, 64, 65, 127, 128, 129, 300, 1000):
        for padding in ("pre", "post"):
            expected = pad_sequences(seqs, maxlen, padding=padding, truncating=truncating)
            got = tok.encode(imdb_test[:150], maxlen, padding=padding, truncating=truncating)
            np.testing.assert_array_equal(got, expected, err_msg=f"maxlen={maxlen}")


def test_encode_into_a_reused_buffer(tok, texts, expected):
    buf = np.full((len(texts), 120), -7, dtype=np.int32)
    result = tok.encode(texts, maxlen=120, out=buf)
    assert result is not None and np.shares_memory(result, buf)
    np.testing.assert_array_equal(buf, expected)
    with pytest.raises(ValueError, match="shape"):
        tok.encode(texts, maxlen=100, out=buf)
    with pytest.raises(TypeError, match="dtype"):
        tok.encode(texts, maxlen=120, out=buf.astype(np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        tok.encode(texts[:60], maxlen=120, out=buf[::2])


def test_every_array_path_keeps_the_gil_for_python_objects():
    """Regression: encode() without maxlen returned its array (an incref) after releasing the
    GIL. A Release build cannot tell; the Debug build of scripts/sanitize-kernels.sh checks
    the GIL on every reference count change and fails this test before the fix."""
    tok = Tokenizer(num_words=50, oov_token="<OOV>")
    texts = ["a good film", "a bad, bad film", ""]
    tok.fit_on_texts(texts)
    for dtype in ("int32", "int64"):
        longest = tok.encode(texts, dtype=dtype)  # maxlen=None: the ragged path
        assert longest.shape == (3, 4) and longest.dtype == dtype
        fixed = tok.encode(texts, maxlen=4, dtype=dtype)
        out = np.zeros((3, 4), dtype=dtype)
        assert tok.encode(texts, maxlen=4, dtype=dtype, out=out) is not None
        assert (out == fixed).all()
        seqs = tok.texts_to_sequences(texts)
        assert (pad_sequences(seqs, dtype=dtype) == longest).all()
        assert (pad_sequences(seqs, maxlen=4, dtype=dtype) == fixed).all()


def test_out_of_memory_on_a_worker_thread_is_a_memory_error():
    """Regression: an exception on a worker thread (here std::bad_alloc under an address-space
    limit) ended in std::terminate, killing the interpreter; it is raised as MemoryError."""
    code = """
import resource, sys
from critic.kernels import Tokenizer
tok = Tokenizer(num_words=100)
tok.fit_on_texts(["a b c d"])
texts = ["a b c d " * 50000] * 400  # 80M ids, ~320 MB in C++
size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + (200 << 20),) * 2)
for threads in (2, 2, 2):
    try:
        tok.texts_to_sequences(texts, threads=threads)
    except MemoryError:
        continue
    sys.exit("no MemoryError")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "ok"
