"""Labeled review datasets: labeled files, the aclImdb layout, and seeded splits.

Everything is read through :mod:`critic.data.readers`. TF-free and Ray-free, shared by
training (orchestrator) and the main job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from critic.storage import Location, location

from .archives import acl_root, resolve_imdb
from .readers import CorpusError, input_format, read_columns

DEFAULT_LABELS = ("neg", "pos")


@dataclass
class LabeledTexts:
    """Texts with 0/1 labels (1 = the second name in ``label_names``) and row ids."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str] = field(default_factory=list)
    label_names: tuple[str, str] = DEFAULT_LABELS

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int8)
        if not self.ids:
            self.ids = [str(i) for i in range(len(self.texts))]
        if not (len(self.texts) == len(self.labels) == len(self.ids)):
            raise ValueError("texts, labels and ids must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: Sequence[int] | np.ndarray) -> LabeledTexts:
        index = np.asarray(index, dtype=np.int64)
        return LabeledTexts(
            [self.texts[i] for i in index],
            self.labels[index],
            [self.ids[i] for i in index],
            self.label_names,
        )


def parse_label(value: object, names: Sequence[str], where: str) -> int:
    """0/1 (ints or bools) or one of the two declared label names."""
    if value is None:
        raise CorpusError(f"{where}: no label (the field is missing or null)")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, str):
        if value in names:
            return list(names).index(value)
        if value.strip() in ("0", "1"):
            return int(value)
    raise CorpusError(f"{where}: label {value!r} is neither 0/1 nor one of {list(names)}")


def read_labeled(
    path: str | Path | Location,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] = DEFAULT_LABELS,
    fmt: str | None = None,
    id_column: str | None = None,
) -> LabeledTexts:
    """A labeled corpus from JSON Lines, CSV/TSV or Parquet; the first unreadable row is a
    CorpusError naming the file and row (training never drops a row)."""
    path = location(path)
    if path.name.endswith((".tar.gz", ".tgz")) or input_format(path, fmt) == "acl_imdb":
        raise CorpusError(f"{path}: use read_acl_imdb(path, split) for the aclImdb layout")
    data = read_columns(path, text_column, (label_column,), id_column, fmt)
    labels = [
        parse_label(v, label_names, f"{path}: row {i}") for i, v in enumerate(data[label_column])
    ]
    ids = [str(v) for v in data[id_column]] if id_column else []
    return LabeledTexts(data[text_column], np.array(labels, dtype=np.int8), ids, tuple(label_names))


def read_acl_imdb(root: str | Path | Location, split: str) -> LabeledTexts:
    """``{split}/{neg,pos}/<id>_<rating>.txt`` under ``root`` (the aclImdb folder, a folder
    holding it, or its .tar.gz archive, which is extracted safely into the cache; local or a
    storage URI), in the order :func:`~critic.data.readers.acl_imdb_files` gives (``critic
    score`` reads the same)."""
    folder = acl_imdb_split(root, split)
    for name in DEFAULT_LABELS:
        if not (folder / name).is_dir():
            raise CorpusError(f"{folder.parent}: no {split}/{name} folder (not the aclImdb layout)")
    texts, labels, ids = [], [], []
    for label, name in enumerate(DEFAULT_LABELS):
        data = read_columns(folder / name, "text", id_column="path", fmt="acl_imdb")
        texts += data["text"]
        labels += [label] * len(data["text"])
        ids += [f"{name}/{Path(rel).stem}" for rel in data["path"]]
    return LabeledTexts(texts, np.array(labels, dtype=np.int8), ids)


def acl_imdb_split(root: str | Path | Location, split: str) -> Location:
    """The ``{split}/`` folder (``pos/``, ``neg/``) of an aclImdb folder or archive."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _acl_root(resolve_imdb(root)) / split


def _acl_root(path: Location) -> Location:
    root = acl_root(path)
    if root is None:
        raise CorpusError(f"{path}: not an aclImdb folder (expected train/ and test/)")
    return root


def stratified_split(
    labels: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, validation) row indices; each class split by the fraction."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_val = max(1, round(len(rows) * validation_fraction)) if len(rows) > 1 else 0
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
