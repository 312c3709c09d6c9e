"""Keras' imdb.npz as a sweep dataset: the allow-listed reader, and a sweep on it whose
exported bundle maps raw reviews to exactly the ids the model was trained on."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from critic.data.datasets import read_labeled
from critic.data.imdb_npz import read_imdb_npz, read_word_index
from critic.data.readers import CorpusError
from critic.data.sample import sample_path
from critic.kernels import Tokenizer, text_to_word_sequence


def _object_array(rows: list) -> np.ndarray:
    arr = np.empty(len(rows), dtype=object)
    arr[:] = rows
    return arr


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory) -> tuple[Path, Path]:
    """imdb.npz and imdb_word_index.json in Keras' format, built from the shipped sample."""
    train, test = read_labeled(sample_path("train")), read_labeled(sample_path("test"))
    ranker = Tokenizer()
    ranker.fit_on_texts(train.texts + test.texts)  # 1-based frequency ranks, like the file
    word_index = dict(ranker.word_index)
    folder = tmp_path_factory.mktemp("imdb_npz")

    def ranks(texts):
        return _object_array([[word_index[w] for w in text_to_word_sequence(t)] for t in texts])

    np.savez(
        folder / "imdb.npz",
        x_train=ranks(train.texts),
        y_train=train.labels.astype(np.int64),
        x_test=ranks(test.texts),
        y_test=test.labels.astype(np.int64),
    )
    (folder / "imdb_word_index.json").write_text(json.dumps(word_index))
    return folder / "imdb.npz", folder / "imdb_word_index.json"


def test_reads_the_arrays(npz_files):
    npz, index = npz_files
    data = read_imdb_npz(npz)
    with np.load(npz, allow_pickle=True) as raw:
        for split in ("train", "test"):
            assert len(data[split]) == len(raw[f"x_{split}"]) == 1000
            assert all(
                list(a) == list(b)
                for a, b in zip(data[split].sequences, raw[f"x_{split}"], strict=True)
            )
            np.testing.assert_array_equal(data[split].labels, raw[f"y_{split}"])
    assert read_word_index(index)["the"] == 1


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "hostile.npz"
    np.savez(
        hostile,
        x_train=_object_array([[1, 2], _Payload(marker)]),
        y_train=np.array([0, 1]),
        x_test=_object_array([[3]]),
        y_test=np.array([1]),
    )
    with pytest.raises(CorpusError, match=r"x_train: not a plain numpy object array.*posix"):
        read_imdb_npz(hostile)
    assert not marker.exists()
    # The same file through plain pickle does run the payload (the test's premise).
    with np.load(hostile, allow_pickle=True) as raw:
        raw["x_train"]
    assert marker.exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": _object_array([[1, 2]]), "y_train": np.array([1])}, "no array 'x_test'"),
        ({"x_train": _object_array([[1, 2], [3]]), "y_train": np.array([1])}, "2 reviews but 1"),
        ({"x_train": _object_array([[1, "a"]]), "y_train": np.array([1])}, "review 0 is not"),
        ({"x_train": _object_array([[0, 2]]), "y_train": np.array([1])}, "positive word ranks"),
        ({"x_train": _object_array([[1, 2]]), "y_train": np.array([2])}, "labels must be 0 or 1"),
    ],
)
def test_bad_files_are_refused(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    extra = {} if "no array" in message else {"x_test": _object_array([[1]]), "y_test": [0]}
    np.savez(path, **arrays, **extra)
    with pytest.raises(CorpusError, match=message):
        read_imdb_npz(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CorpusError, match=r"not an \.npz file"):
        read_imdb_npz(tmp_path / "junk.npz")


def test_a_shared_pickled_list_cannot_expand_without_bound(tmp_path, monkeypatch):
    """Every row references one pickled list: the file stays small, the reviews do not."""
    import critic.data.imdb_npz as imdb_npz

    shared = list(range(1, 100_001))
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(
        bomb,
        x_train=_object_array([shared] * 300),
        y_train=np.zeros(300, dtype=np.int64),
        x_test=_object_array([[1]]),
        y_test=np.array([1]),
    )
    assert bomb.stat().st_size < 2_000_000
    monkeypatch.setattr(imdb_npz, "MAX_RANKS", 10_000_000)  # 300 x 100k = 30M ranks
    with pytest.raises(CorpusError, match=r"x?train: more than 10,000,000 word ranks"):
        read_imdb_npz(bomb)


def test_an_array_that_decompresses_past_the_bound_is_refused(tmp_path, monkeypatch):
    import critic.data.imdb_npz as imdb_npz

    zeros = tmp_path / "zeros.npz"
    np.savez_compressed(
        zeros,
        x_train=_object_array([[1]]),
        y_train=np.array([1]),
        x_test=_object_array([[1]]),
        y_test=np.zeros(8_000_000, dtype=np.int64),  # 64 MB of zeros, ~60 kB compressed
    )
    assert zeros.stat().st_size < 1_000_000
    monkeypatch.setattr(imdb_npz, "MAX_ELEMENTS", 10_000_000)
    monkeypatch.setattr(imdb_npz, "MAX_ARRAY_BYTES", 16 << 20)
    with pytest.raises(CorpusError, match=r"y_test: more than 16 MB uncompressed"):
        read_imdb_npz(zeros)
    monkeypatch.setattr(imdb_npz, "MAX_ARRAY_BYTES", 256 << 20)
    monkeypatch.setattr(imdb_npz, "MAX_ELEMENTS", 1_000_000)
    with pytest.raises(CorpusError, match=r"y_test: \(8000000,\) holds more than 1,000,000"):
        read_imdb_npz(zeros)
    # A damaged member is a clear error too.
    data = bytearray(zeros.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    zeros.write_bytes(bytes(data))
    with pytest.raises(CorpusError):
        read_imdb_npz(zeros)


def test_config_needs_both_files(npz_files, tmp_path):
    from critic.orchestrator.config import ConfigError, SweepConfig

    npz, _ = npz_files
    with pytest.raises(ConfigError, match=r"dataset\.word_index: required"):
        SweepConfig.from_dict({"dataset": {"kind": "imdb_npz", "path": str(npz)}})
    with pytest.raises(ConfigError, match=r"dataset\.path: .*no such file"):
        SweepConfig.from_dict(
            {"dataset": {"kind": "imdb_npz", "path": str(tmp_path / "x.npz"), "word_index": "y"}}
        )


def test_sweep_on_npz_exports_a_bundle_for_raw_text(npz_files, tmp_path, ray_local):
    """Train on imdb.npz ranks; the bundle's ImdbIndex turns the raw reviews into the very
    arrays the model was trained and tested on, and its predictions match Keras."""
    pytest.importorskip("ray")
    pytest.importorskip("tf2onnx")
    import keras
    from helpers import tiny_sweep_config

    import critic
    from critic.export import export_run
    from critic.orchestrator.config import SweepConfig
    from critic.orchestrator.sweep import run_sweep

    npz, index = npz_files
    cfg = SweepConfig.from_dict(
        tiny_sweep_config(
            tmp_path,
            dataset={"kind": "imdb_npz", "path": str(npz), "word_index": str(index), "seed": 3},
            tokenizer={"num_words": 1500, "maxlen": 64},
            model={"family": "lstm", "embedding_dim": 8, "units": 8},
            search={"num_samples": 1, "scheduler": "fifo"},
            training={"epochs": 1, "batch_size": 64},
            top_k=1,
        )
    )
    run_dir = run_sweep(cfg)
    assert export_run(run_dir, 1, run_dir / "bundles", None)
    runtime = critic.Runtime.load(run_dir / "bundles" / "rank1")
    assert runtime.bundle.encode["mode"] == "keras_imdb_index"
    assert "imdb.npz" in (run_dir / "bundles" / "rank1" / "README.md").read_text()

    (data,) = (run_dir / "data").iterdir()
    x_test = np.load(data / "x_test.npy")
    texts = read_labeled(sample_path("test")).texts  # the raw reviews behind x_test
    np.testing.assert_array_equal(runtime.encode(texts), x_test)

    board = json.loads((run_dir / "leaderboard.json").read_text())
    checkpoint = run_dir / board["trials"][0]["checkpoint"] / "model.keras"
    model = keras.models.load_model(checkpoint, compile=False)
    expected = model.predict(x_test, verbose=0)[:, 0]
    np.testing.assert_allclose(runtime.predict(texts), expected, atol=1e-5)
    assert pickle.dumps(runtime.bundle.meta)  # metadata is plain data
