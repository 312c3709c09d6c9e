"""Dataset kinds of a sweep config (``dataset.kind``), in one registry: which keys each needs,
how its splits load, and where its raw test reviews are for the main job to score.

``resolve`` turns a config value into a path (relative to the config file) or, for a storage
URI, a :class:`~critic.storage.Location`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from critic.storage import Location

from .archives import imdb_location
from .datasets import LabeledTexts, acl_imdb_split, read_acl_imdb, read_labeled
from .imdb_npz import RankSequences, read_imdb_npz, read_word_index
from .readers import CorpusError

Resolve = Callable[[Any], Path | Location]
Split = LabeledTexts | RankSequences
# The true labels of scored rows, from the ids critic score wrote.
Truth = Callable[[list], np.ndarray]


@dataclass(frozen=True)
class DatasetKind:
    """One ``dataset.kind``: what it needs, how its splits load, where its raw test reviews
    are (None: it has none), and the fixed word index it maps ids with (None: a tokenizer is
    fitted on the training texts)."""

    name: str
    problems: Callable[[dict, Resolve], list[str]]
    load: Callable[[dict, Resolve], tuple[Split, Split]]
    test_reviews: Callable[[dict, Resolve], tuple[Path | Location, str | None, Truth]] | None = None
    word_index: Callable[[dict, Resolve], dict[str, int]] | None = None


def _need_files(*keys: str) -> Callable[[dict, Resolve], list[str]]:
    def problems(ds: dict, resolve: Resolve) -> list[str]:
        found = []
        for key in keys:
            if not ds.get(key):
                found.append(f"dataset.{key} is required for kind {ds.get('kind')!r}")
            elif not resolve(ds[key]).is_file():
                found.append(f"dataset.{key}: {ds[key]}: no such file")
        return found

    return problems


def _imdb_problems(ds: dict, resolve: Resolve) -> list[str]:
    try:
        root = _imdb_root(ds, resolve)
    except CorpusError as e:
        return [str(e)]
    return [] if root.exists() else [f"dataset.path: {root}: no such file or folder"]


def _label_options(ds: dict) -> dict[str, Any]:
    opts = {k: ds[k] for k in ("text_column", "label_column") if k in ds}
    if "labels" in ds:
        opts["label_names"] = tuple(ds["labels"])
    return opts


def _files_load(ds: dict, resolve: Resolve) -> tuple[Split, Split]:
    opts = _label_options(ds)
    return read_labeled(resolve(ds["train"]), **opts), read_labeled(resolve(ds["test"]), **opts)


def _files_test(ds: dict, resolve: Resolve):
    path = resolve(ds["test"])
    labels = read_labeled(path, **_label_options(ds)).labels.astype(bool)
    return path, None, lambda ids: labels[np.asarray(ids, dtype=np.int64)]


def _imdb_root(ds: dict, resolve: Resolve) -> Path | Location:
    return resolve(imdb_location(ds.get("path")))


def _imdb_load(ds: dict, resolve: Resolve) -> tuple[Split, Split]:
    root = _imdb_root(ds, resolve)
    return read_acl_imdb(root, "train"), read_acl_imdb(root, "test")


def _imdb_test(ds: dict, resolve: Resolve):
    folder = acl_imdb_split(_imdb_root(ds, resolve), "test")
    return folder, "path", lambda ids: np.array([i.split("/", 1)[0] == "pos" for i in ids])


def _npz_load(ds: dict, resolve: Resolve) -> tuple[Split, Split]:
    arrays = read_imdb_npz(resolve(ds["path"]))
    return arrays["train"], arrays["test"]


KINDS: dict[str, DatasetKind] = {
    "imdb": DatasetKind("imdb", _imdb_problems, _imdb_load, _imdb_test),
    "files": DatasetKind("files", _need_files("train", "test"), _files_load, _files_test),
    "imdb_npz": DatasetKind(
        "imdb_npz",
        _need_files("path", "word_index"),
        _npz_load,
        word_index=lambda ds, resolve: read_word_index(resolve(ds["word_index"])),
    ),
}


def dataset_kind(ds: dict) -> DatasetKind:
    """The kind of a config's dataset section (``imdb`` when not given)."""
    name = ds.get("kind", "imdb")
    if name not in KINDS:
        raise ValueError(f"dataset.kind must be one of {tuple(KINDS)}, got {name!r}")
    return KINDS[name]
