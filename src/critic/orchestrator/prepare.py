"""Load the sweep's data once, split it, and tokenize it once per tokenizer setting.

Arrays land in ``RUN_DIR/data/<setting>/`` as .npy files (plus the fitted tokenizer JSON) for
the leaderboard and export; trials get them through Ray's object store (:func:`trial_arrays`,
put once per sweep), so no trial reads a file of the driver and none tokenizes. The tokenizer
is fitted on the training split only.
Keras' ``imdb.npz`` (kind ``imdb_npz``) arrives already as word ranks: its ids are mapped as
``keras.datasets.imdb.load_data`` maps them, and the tokenizer saved for the bundle is the
``ImdbIndex`` that maps raw text the same way.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from critic.data.datasets import DEFAULT_LABELS, stratified_split
from critic.data.imdb_npz import RankSequences
from critic.data.kinds import Split, dataset_kind
from critic.kernels import ImdbIndex, Ngrams, Tokenizer, pad_sequences

from .config import SweepConfig, resolve_setting, setting_values


def load_splits(cfg: SweepConfig) -> dict[str, Split]:
    """train / val / test splits; the test split is only read here and at the very end."""
    ds = cfg.dataset
    train, test = dataset_kind(ds).load(ds, cfg.path)
    if ds.limit:
        train = _stratified_head(train, ds.limit, ds.seed)
        test = _stratified_head(test, ds.limit, ds.seed + 1)
    tr, va = stratified_split(train.labels, ds.validation_fraction, ds.seed)
    return {"train": train.subset(tr), "val": train.subset(va), "test": test}


def _stratified_head(data: Split, n: int, seed: int) -> Split:
    if n >= len(data):
        return data
    _, keep = stratified_split(data.labels, n / len(data), seed)
    return data.subset(keep)


def tokenizer_settings(cfg: SweepConfig) -> list[dict]:
    """Every distinct concrete tokenizer setting a trial can ask for: each choice/grid
    combination (the config's validation refuses other spaces here), resolved for each model
    family of the sweep."""
    space = cfg.tokenizer_space
    options = [setting_values(value) for value in space.values()]
    settings = {}
    for combo in itertools.product(*options):
        for family in cfg.families:
            setting = resolve_setting(dict(zip(space, combo, strict=True)), family)
            settings[setting_key(setting)] = setting
    return list(settings.values())


def trial_setting(config: dict) -> dict:
    """The concrete tokenizer setting of one trial's config (``tokenizer`` and ``model``)."""
    return resolve_setting(config["tokenizer"], config["model"]["family"])


def setting_key(setting: dict) -> str:
    blob = json.dumps(setting, sort_keys=True).encode()
    return f"nw{setting['num_words']}-len{setting['maxlen']}-" + hashlib.sha1(blob).hexdigest()[:8]


def _padded_ids(tok, data: Split, setting: dict) -> np.ndarray:
    """int32 [n, maxlen] ids of one split: word ranks mapped by an ImdbIndex, or texts
    tokenized by the fitted Tokenizer."""
    options = {"maxlen": setting["maxlen"], "padding": setting["padding"]}
    if isinstance(data, RankSequences):
        ids = pad_sequences([tok.remap(r) for r in data.sequences], **options)
    else:
        ids = tok.encode(data.texts, **options)
    return ids.astype(np.int32, copy=False)


def prepare_arrays(cfg: SweepConfig, splits: dict[str, Split], data_dir: Path) -> dict:
    """Tokenize every split once per setting; returns {setting_key: folder}."""
    folders = {}
    kind = dataset_kind(cfg.dataset)
    word_index = kind.word_index(cfg.dataset, cfg.path) if kind.word_index else None
    for setting in tokenizer_settings(cfg):
        key = setting_key(setting)
        folder = data_dir / key
        folders[key] = str(folder)
        if (folder / "done").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if word_index is not None:
            tok = ImdbIndex(word_index, num_words=setting["num_words"])
        else:
            tok = Tokenizer(num_words=setting["num_words"], oov_token=setting["oov_token"] or None)
            tok.fit_on_texts(splits["train"].texts)
            tok.ngrams = _ngrams(tok, splits["train"].texts, setting)
        for name, data in splits.items():
            np.save(folder / f"x_{name}.npy", _padded_ids(tok, data, setting))
            np.save(folder / f"y_{name}.npy", data.labels.astype(np.float32))
        doc = json.loads(tok.to_json())
        doc["encode"] = {"padding": setting["padding"], "truncating": "pre"}  # for export
        (folder / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
        (folder / "setting.json").write_text(json.dumps(setting), encoding="utf-8")
        labels = list(label_names(splits["train"]))
        (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
        size = tok.ngrams.size if getattr(tok, "ngrams", None) else setting["num_words"]
        (folder / "vocab_size").write_text(str(size))
        (folder / "done").write_text("")
    return folders


def _ngrams(tok: Tokenizer, texts, setting: dict) -> Ngrams | None:
    """The n-gram ids a setting asks for, fitted on the training texts (or hashed)."""
    order, distinct = int(setting["ngrams"]), bool(setting["distinct"])
    if order == 1:
        return Ngrams.fit(tok, texts, 1, distinct=True) if distinct else None
    if setting["hash_buckets"]:
        return Ngrams.hashed(tok, order, int(setting["hash_buckets"]), distinct=distinct)
    return Ngrams.fit(
        tok,
        texts,
        order,
        max_ngrams=int(setting["max_ngrams"]),
        min_count=int(setting["ngram_min_count"]),
        distinct=distinct,
    )


def label_names(data: Split) -> tuple[str, ...]:
    """The classes of a split in order (Keras' imdb.npz ids are always neg/pos)."""
    return getattr(data, "label_names", DEFAULT_LABELS)


def folder_labels(folder: Path, before: list[str] | None = None) -> tuple[str, ...]:
    """The classes of a prepared data folder; for a folder prepared before k classes (a
    resumed old sweep), ``before`` (the config's two labels) or neg/pos."""
    path = Path(folder) / "labels.json"
    if path.is_file():
        return tuple(json.loads(path.read_text(encoding="utf-8")))
    return tuple(before) if before else DEFAULT_LABELS


TRIAL_SPLITS = ("train", "val")


def trial_arrays(folders: dict[str, str]) -> dict[str, dict]:
    """What every trial needs, per tokenizer setting: the train and validation ids and labels,
    the tokenizer JSON (for GloVe) and the number of ids (the embedding size). Handed to Tune
    once (``tune.with_parameters``)."""
    arrays = {}
    for key, folder in folders.items():
        folder = Path(folder)
        data = {f"{a}_{s}": np.load(folder / f"{a}_{s}.npy") for a in "xy" for s in TRIAL_SPLITS}
        data["tokenizer"] = (folder / "tokenizer.json").read_text(encoding="utf-8")
        data["vocab_size"] = int((folder / "vocab_size").read_text())
        data["labels"] = folder_labels(folder)
        arrays[key] = data
    return arrays
