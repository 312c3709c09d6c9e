"""Dataset kinds of a sweep config (``dataset.kind``), in one registry: which keys each needs,
how its splits load, and where its raw test reviews are for the main job to score.

Each function takes the config's typed dataset section (``critic.orchestrator.schema``: its
keys are attributes, its defaults filled in). ``resolve`` turns a config value into a path
(relative to the config file) or, for a storage URI, a :class:`~critic.storage.Location`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from critic.storage import Location

from .archives import imdb_location
from .datasets import LabeledTexts, acl_imdb_split, imdb_rating, read_acl_imdb, read_labeled
from .imdb_npz import RankSequences, read_imdb_npz, read_word_index
from .readers import CorpusError

Resolve = Callable[[Any], Path | Location]
Section = Any  # a typed dataset section: attributes, not keys
Split = LabeledTexts | RankSequences
# The true label names of scored rows, from the ids critic score wrote and the bundle's
# labels (the classes the run trained on, in order).
Truth = Callable[[list, tuple[str, ...]], np.ndarray]


@dataclass(frozen=True)
class DatasetKind:
    """One ``dataset.kind``: what it needs, how its splits load, where its raw test reviews
    are (None: it has none), and the fixed word index it maps ids with (None: a tokenizer is
    fitted on the training texts)."""

    name: str
    problems: Callable[[Section, Resolve], list[str]]
    load: Callable[[Section, Resolve], tuple[Split, Split]]
    test_reviews: Callable[[Section, Resolve], tuple[Path | Location, str | None, Truth]] | None = (
        None
    )
    word_index: Callable[[Section, Resolve], dict[str, int]] | None = None


def _need_files(*keys: str) -> Callable[[Section, Resolve], list[str]]:
    def problems(ds: Section, resolve: Resolve) -> list[str]:
        found = []
        for key in keys:
            value = getattr(ds, key)
            if not value:
                found.append(f"dataset.{key} is required for kind {ds.kind!r}")
            elif not resolve(value).is_file():
                found.append(f"dataset.{key}: {value}: no such file")
        return found

    return problems


def _imdb_problems(ds: Section, resolve: Resolve) -> list[str]:
    try:
        root = _imdb_root(ds, resolve)
    except CorpusError as e:
        return [str(e)]
    return [] if root.exists() else [f"dataset.path: {root}: no such file or folder"]


def _columns(ds: Section) -> dict[str, Any]:
    return {"text_column": ds.text_column, "label_column": ds.label_column}


def _files_load(ds: Section, resolve: Resolve) -> tuple[Split, Split]:
    """The training file's classes (the config's ``labels``, or those found in it) read the
    test file too: a test label training never saw is an error."""
    train = read_labeled(resolve(ds.train), label_names=ds.labels, **_columns(ds))
    return train, read_labeled(resolve(ds.test), label_names=train.label_names, **_columns(ds))


def _files_test(ds: Section, resolve: Resolve):
    path = resolve(ds.test)

    def truth(ids: list, labels: tuple[str, ...]) -> np.ndarray:
        test = read_labeled(path, label_names=labels, **_columns(ds))
        return np.asarray(labels, dtype=object)[test.labels][np.asarray(ids, dtype=np.int64)]

    return path, None, truth


def _imdb_root(ds: Section, resolve: Resolve) -> Path | Location:
    return resolve(imdb_location(ds.path))


def _imdb_load(ds: Section, resolve: Resolve) -> tuple[Split, Split]:
    root = _imdb_root(ds, resolve)
    return read_acl_imdb(root, "train", ds.target), read_acl_imdb(root, "test", ds.target)


def _imdb_test(ds: Section, resolve: Resolve):
    folder = acl_imdb_split(_imdb_root(ds, resolve), "test")
    if ds.target == "rating":  # critic score's ids are the files' paths: pos/123_9.txt
        return folder, "path", lambda ids, _: np.array([imdb_rating(Path(i).stem) for i in ids])
    return folder, "path", lambda ids, _: np.array([i.split("/", 1)[0] for i in ids], dtype=object)


def _npz_load(ds: Section, resolve: Resolve) -> tuple[Split, Split]:
    arrays = read_imdb_npz(resolve(ds.path))
    return arrays["train"], arrays["test"]


KINDS: dict[str, DatasetKind] = {
    "imdb": DatasetKind("imdb", _imdb_problems, _imdb_load, _imdb_test),
    "files": DatasetKind("files", _need_files("train", "test"), _files_load, _files_test),
    "imdb_npz": DatasetKind(
        "imdb_npz",
        _need_files("path", "word_index"),
        _npz_load,
        word_index=lambda ds, resolve: read_word_index(resolve(ds.word_index)),
    ),
}


def dataset_kind(ds: Section) -> DatasetKind:
    """The kind of a config's dataset section."""
    if ds.kind not in KINDS:
        raise ValueError(f"dataset.kind must be one of {tuple(KINDS)}, got {ds.kind!r}")
    return KINDS[ds.kind]
