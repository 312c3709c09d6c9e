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
    """Texts with class indices into ``label_names`` (binary: 1 = the second name) and row
    ids."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str] = field(default_factory=list)
    label_names: tuple[str, ...] = DEFAULT_LABELS

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int32)
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


_BINARY_VALUES = {"0": 0, "1": 1, "false": 0, "true": 1}


def label_text(value: object) -> str | None:
    """A label value as the class name it stands for (``3``, ``3.0`` and ``"3"`` are all
    ``"3"``); None for a missing value."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def parse_label(value: object, names: Sequence[str], where: str) -> int:
    """The class index of ``value``: one of ``names``, or for two names also 0/1 (ints,
    bools or their text)."""
    text = label_text(value)
    if text is None:
        raise CorpusError(f"{where}: no label (the field is missing or null)")
    if text in names:
        return list(names).index(text)
    if len(names) == 2 and text.strip().lower() in _BINARY_VALUES:
        return _BINARY_VALUES[text.strip().lower()]
    if len(names) == 2 and list(names) == list(DEFAULT_LABELS):
        raise CorpusError(f"{where}: label {value!r} is neither 0/1 nor one of {list(names)}")
    raise CorpusError(f"{where}: label {value!r} is not one of the classes {list(names)}")


def discover_labels(values: Sequence[object], where: str) -> tuple[str, ...]:
    """The classes of a training split's label values, in order: 0/1 (or neg/pos) is the
    binary case ``("neg", "pos")``; any other set is its distinct values, sorted (as numbers
    when every one is a number, so ratings keep their order)."""
    found: dict[str, int] = {}  # each label and its first row
    for i, value in enumerate(values):
        text = label_text(value)
        if text is None:
            raise CorpusError(f"{where}: row {i}: no label (the field is missing or null)")
        if not text.strip():
            raise CorpusError(f"{where}: row {i}: the label is empty")
        found.setdefault(text, i)
    binary = [v for v in found if v.strip().lower() in _BINARY_VALUES or v in DEFAULT_LABELS]
    if found and len(binary) == len(found):
        return DEFAULT_LABELS
    zero_one = [v for v in found if v.strip().lower() in _BINARY_VALUES]
    names = [v for v in found if not _is_number(v) and v not in zero_one]
    if zero_one and names and not set(names) <= set(DEFAULT_LABELS):
        # 0/1 beside a word is a typo or a mixed-up column, not a label set: say which row
        odd = min((found[v], v) for v in names if v not in DEFAULT_LABELS)
        raise CorpusError(
            f"{where}: row {odd[0]}: label {odd[1]!r} is neither 0/1 nor one of "
            f"{list(DEFAULT_LABELS)} (the other rows use 0/1); give every class a name"
        )
    if len(found) < 2:
        raise CorpusError(
            f"{where}: the labels hold {len(found)} class{'es' if len(found) != 1 else ''} "
            f"({sorted(found)}); a classifier needs at least two"
        )
    try:
        return tuple(sorted(found, key=float))
    except ValueError:
        return tuple(sorted(found))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_labeled(
    path: str | Path | Location,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    fmt: str | None = None,
    id_column: str | None = None,
) -> LabeledTexts:
    """A labeled corpus from JSON Lines, CSV/TSV or Parquet; the first unreadable row is a
    CorpusError naming the file and row (training never drops a row). ``label_names``: the
    classes in order (a label outside them is an error); None finds them in this file (see
    :func:`discover_labels`)."""
    path = location(path)
    if path.name.endswith((".tar.gz", ".tgz")) or input_format(path, fmt) == "acl_imdb":
        raise CorpusError(f"{path}: use read_acl_imdb(path, split) for the aclImdb layout")
    data = read_columns(path, text_column, (label_column,), id_column, fmt)
    values = data[label_column]
    names = tuple(label_names) if label_names else discover_labels(values, str(path))
    labels = [parse_label(v, names, f"{path}: row {i}") for i, v in enumerate(values)]
    ids = [str(v) for v in data[id_column]] if id_column else []
    return LabeledTexts(data[text_column], np.array(labels, dtype=np.int32), ids, names)


IMDB_TARGETS = ("sentiment", "rating")
IMDB_RATINGS = ("1", "2", "3", "4", "7", "8", "9", "10")  # the ratings aclImdb holds


def read_acl_imdb(
    root: str | Path | Location, split: str, target: str = "sentiment"
) -> LabeledTexts:
    """``{split}/{neg,pos}/<id>_<rating>.txt`` under ``root`` (the aclImdb folder, a folder
    holding it, or its .tar.gz archive, which is extracted safely into the cache; local or a
    storage URI), in the order :func:`~critic.data.readers.acl_imdb_files` gives (``critic
    score`` reads the same). ``target``: ``sentiment`` (neg/pos) or ``rating`` (the 8 star
    ratings of the file names, :data:`IMDB_RATINGS`)."""
    if target not in IMDB_TARGETS:
        raise ValueError(f"target must be one of {IMDB_TARGETS}, got {target!r}")
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
    if target == "sentiment":
        return LabeledTexts(texts, np.array(labels, dtype=np.int32), ids)
    ratings = [imdb_rating(i, f"{folder}") for i in ids]
    index = {r: i for i, r in enumerate(IMDB_RATINGS)}
    return LabeledTexts(texts, np.array([index[r] for r in ratings], np.int32), ids, IMDB_RATINGS)


def imdb_rating(review_id: str, where: str = "aclImdb") -> str:
    """The star rating of an aclImdb review id (``pos/123_9`` -> ``"9"``)."""
    rating = review_id.rsplit("_", 1)[-1]
    if rating not in IMDB_RATINGS:
        raise CorpusError(f"{where}: {review_id}: no rating 1-4 or 7-10 in the file name")
    return rating


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
