"""critic.kernels.pad_sequences against keras.utils.pad_sequences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from critic.kernels import pad_sequences

SEQUENCES = [[1, 2, 3, 4, 5], [], [7], [8, 9], list(range(10, 30)), [0, 0, 3]]


@pytest.mark.parametrize(
    ("padding", "truncating", "maxlen"),
    list(itertools.product(["pre", "post"], ["pre", "post"], [None, 1, 3, 5, 25])),
)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("value", [0, -1, 7, 2.9, -2.9])
def test_matches_keras(keras_pad, padding, truncating, maxlen, dtype, value):
    expected = keras_pad(SEQUENCES, maxlen, dtype, padding, truncating, value)
    got = pad_sequences(SEQUENCES, maxlen, dtype, padding, truncating, value)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "sequences",
    [
        [np.array([1, 2, 3]), np.array([4])],  # numpy rows
        [(1, 2), (3,)],  # tuples
        [[1.5, 2.7], [3.2]],  # floats are cast like numpy
        [[[1, 2], [3, 4]], [[5, 6]]],  # multi-dimensional samples
        np.arange(12).reshape(3, 4),
    ],
)
@pytest.mark.parametrize("dtype", ["int32", "float32", "int64"])
def test_general_inputs_match_keras(keras_pad, sequences, dtype):
    for maxlen in (None, 2, 6):
        expected = keras_pad(sequences, maxlen=maxlen, dtype=dtype)
        got = pad_sequences(sequences, maxlen=maxlen, dtype=dtype)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_object_dtype_and_string_values_match_keras(keras_pad):
    seqs = [["a", "b"], ["c"]]
    np.testing.assert_array_equal(
        pad_sequences(seqs, dtype=object, value="<pad>"),
        keras_pad(seqs, dtype=object, value="<pad>"),
    )


def _error_of(fn):
    try:
        fn()
    except Exception as e:
        return type(e)
    return None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"padding": "middle"},
        {"truncating": "middle"},
        {"value": "x"},
        {"maxlen": -1},
        {"maxlen": 2.5},
        {"maxlen": "3"},
        {"maxlen": True},
    ],
)
def test_invalid_arguments_raise_like_keras(keras_pad, kwargs):
    keras_error = _error_of(lambda: keras_pad(SEQUENCES, **kwargs))
    assert keras_error is not None
    with pytest.raises(keras_error):
        pad_sequences(SEQUENCES, **kwargs)


def test_invalid_sequences_raise_like_keras(keras_pad):
    for bad in (5, [1, 2], [[1], 2], []):
        keras_error = _error_of(lambda bad=bad: keras_pad(bad))
        assert keras_error is not None, bad
        with pytest.raises(keras_error):
            pad_sequences(bad)


def test_empty_input_with_any_value_is_empty_like_keras(keras_pad):
    for value in (None, 0, 1.5):
        expected = keras_pad([], maxlen=1, value=value)
        got = pad_sequences([], maxlen=1, value=value)
        assert got.shape == expected.shape and got.dtype == expected.dtype


def test_kernel_arguments_of_the_wrong_type_are_type_errors():
    """A float or str maxlen/threads was a pybind cast RuntimeError."""
    from critic.kernels import Tokenizer

    tok = Tokenizer()
    tok.fit_on_texts(["a fine film", "a dull film"])
    for kwargs in ({"maxlen": 2.0}, {"maxlen": "2"}, {"threads": 1.5}, {"threads": "2"}):
        with pytest.raises(TypeError, match="must be an int or None"):
            tok.encode(["a fine film"], **kwargs)
    with pytest.raises(TypeError, match="`threads` must be an int"):
        tok.fit_on_texts(["x"], threads=True)
    with pytest.raises(TypeError, match="`threads` must be an int"):
        pad_sequences([[1]], threads="2")
    assert tok.encode(["a fine film"], maxlen=np.int64(2), threads=np.int32(1)).shape == (1, 2)


def test_out_of_range_values_raise_like_numpy(keras_pad):
    big = [[2**40]]
    with pytest.raises(OverflowError):
        keras_pad(big)
    with pytest.raises(OverflowError):
        pad_sequences(big)
    np.testing.assert_array_equal(pad_sequences(big, dtype="int64"), keras_pad(big, dtype="int64"))


def test_threads_do_not_change_the_result():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 1000, rng.integers(0, 60)).tolist() for _ in range(5000)]
    one = pad_sequences(seqs, maxlen=40, threads=1)
    two = pad_sequences(seqs, maxlen=40, threads=2)
    np.testing.assert_array_equal(one, two)
