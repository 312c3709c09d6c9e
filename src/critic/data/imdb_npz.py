"""Keras' IMDB arrays: ``imdb.npz`` (reviews as word ranks) and ``imdb_word_index.json``.

``imdb.npz`` stores each split as a numpy object array of lists, which numpy can only read
by unpickling. Unpickling runs whatever code the file names, so this reader unpickles with
an allow-list: numpy's array reconstruction and nothing else. A file that asks for anything
more is refused before any of it runs. TF-free, shared by training and export.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from critic.storage import Location, location

from .readers import CorpusError

SPLITS = ("train", "test")
# Bounds far above Keras' imdb.npz (25k reviews and ~6M word ranks a split, tens of MB), so a
# small hostile file cannot expand into gigabytes: per array, decompressed bytes and elements;
# per split, word ranks in all reviews together (one pickled list can be referenced by every
# row).
MAX_ARRAY_BYTES = 256 << 20
MAX_ELEMENTS = 5_000_000
MAX_RANKS = 50_000_000
# The only globals an imdb.npz object array needs (numpy 1.x and 2.x module names).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


@dataclass
class RankSequences:
    """Reviews as lists of word ranks (1 = most frequent word) with 0/1 labels."""

    sequences: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, index) -> RankSequences:
        index = np.asarray(index, dtype=np.int64)
        return RankSequences([self.sequences[i] for i in index], self.labels[index])


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_npy(data: bytes, where: str) -> np.ndarray:
    fh = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fh)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(fh)
    except ValueError as e:
        raise CorpusError(f"{where}: not a .npy array ({e})") from e
    if int(np.prod(shape, dtype=np.float64)) > MAX_ELEMENTS:
        raise CorpusError(f"{where}: {shape} holds more than {MAX_ELEMENTS:,} elements")
    if dtype.hasobject:
        try:
            array = _ArrayUnpickler(fh).load()
        except Exception as e:  # any failure of a hostile or damaged pickle
            raise CorpusError(f"{where}: not a plain numpy object array ({e})") from e
        if not isinstance(array, np.ndarray):
            raise CorpusError(f"{where}: not a numpy array")
        return array
    fh.seek(0)
    return np.lib.format.read_array(fh, allow_pickle=False)


def read_imdb_npz(path: str | Path | Location) -> dict[str, RankSequences]:
    """``{"train": ..., "test": ...}`` from a Keras ``imdb.npz``; every review checked to be
    a list of positive integers and every label 0 or 1 (else CorpusError naming the row)."""
    path = location(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    with path.open_input() as fh:
        try:
            archive = zipfile.ZipFile(fh)
        except zipfile.BadZipFile as e:
            raise CorpusError(f"{path}: not an .npz file ({e})") from e
        out = {}
        with archive:
            names = set(archive.namelist())
            for split in SPLITS:
                arrays = []
                for key in (f"x_{split}", f"y_{split}"):
                    if f"{key}.npy" not in names:
                        raise CorpusError(f"{path}: has no array {key!r} (has {sorted(names)})")
                    data = _read_member(archive, f"{key}.npy", f"{path}:{key}")
                    arrays.append(_read_npy(data, f"{path}:{key}"))
                out[split] = _rank_sequences(*arrays, f"{path}:{split}")
    return out


def _read_member(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    """One member's bytes, refused past MAX_ARRAY_BYTES whatever its header claims."""
    too_big = CorpusError(f"{where}: more than {MAX_ARRAY_BYTES >> 20} MB uncompressed")
    if archive.getinfo(name).file_size > MAX_ARRAY_BYTES:
        raise too_big
    try:
        with archive.open(name) as member:
            data = member.read(MAX_ARRAY_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
        raise CorpusError(f"{where}: damaged ({e})") from e
    if len(data) > MAX_ARRAY_BYTES:
        raise too_big
    return data


def _rank_sequences(x: np.ndarray, y: np.ndarray, where: str) -> RankSequences:
    if len(x) != len(y):
        raise CorpusError(f"{where}: {len(x)} reviews but {len(y)} labels")
    sequences, total = [], 0
    for row, review in enumerate(x):
        total += len(review) if hasattr(review, "__len__") else 1
        if total > MAX_RANKS:
            raise CorpusError(f"{where}: more than {MAX_RANKS:,} word ranks in all reviews")
        try:
            ranks = np.asarray(review, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise CorpusError(f"{where}: review {row} is not a list of integers") from None
        if ranks.ndim != 1 or (len(ranks) and ranks.min() < 1):
            raise CorpusError(f"{where}: review {row} is not a list of positive word ranks")
        sequences.append(ranks)
    labels = np.asarray(y)
    if labels.ndim != 1 or not np.isin(labels, (0, 1)).all():
        raise CorpusError(f"{where}: labels must be 0 or 1")
    return RankSequences(sequences, labels.astype(np.int8))


def read_word_index(path: str | Path | Location) -> dict[str, int]:
    """``imdb_word_index.json``: word -> frequency rank (1-based)."""
    path = location(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorpusError(f"{path}: cannot read the word index ({e})") from e
    if not isinstance(index, dict) or not index:
        raise CorpusError(f"{path}: expected a non-empty JSON object of word -> rank")
    if not all(isinstance(v, int) and v >= 1 for v in index.values()):
        raise CorpusError(f"{path}: every rank must be an integer >= 1")
    return index
