"""Load the sweep's data once, split it, and tokenize it once per tokenizer setting.

Arrays land in ``RUN_DIR/data/<setting>/`` as .npy files (plus the fitted tokenizer JSON);
trials memory-map them and never tokenize. The tokenizer is fitted on the training split only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from critic.datasets import (
    LabeledTexts,
    read_acl_imdb,
    read_labeled,
    resolve_imdb,
    stratified_split,
)
from critic.kernels import Tokenizer

from .config import ConfigError, SweepConfig, is_space


def load_splits(cfg: SweepConfig) -> dict[str, LabeledTexts]:
    """train / val / test splits; the test split is only read here and at the very end."""
    ds = cfg.dataset
    if ds.get("kind", "imdb") == "imdb":
        folder = resolve_imdb(cfg.path(ds["path"]) if ds.get("path") else None)
        train, test = read_acl_imdb(folder, "train"), read_acl_imdb(folder, "test")
    else:
        opts = {k: ds[k] for k in ("text_column", "label_column") if k in ds}
        if "labels" in ds:
            opts["label_names"] = tuple(ds["labels"])
        train = read_labeled(cfg.path(ds["train"]), **opts)
        test = read_labeled(cfg.path(ds["test"]), **opts)
    seed = int(ds.get("seed", 13))
    if ds.get("limit"):
        train = _stratified_head(train, int(ds["limit"]), seed)
        test = _stratified_head(test, int(ds["limit"]), seed + 1)
    tr, va = stratified_split(train.labels, float(ds.get("validation_fraction", 0.2)), seed)
    return {"train": train.subset(tr), "val": train.subset(va), "test": test}


def _stratified_head(data: LabeledTexts, n: int, seed: int) -> LabeledTexts:
    if n >= len(data):
        return data
    _, keep = stratified_split(data.labels, n / len(data), seed)
    return data.subset(keep)


def tokenizer_settings(cfg: SweepConfig) -> list[dict]:
    """Every distinct tokenizer setting the sweep can ask for (choice/grid values)."""
    keys, options = [], []
    for key, value in cfg.tokenizer_settings.items():
        if is_space(value):
            kind, args = next(iter(value.items()))
            if kind not in ("choice", "grid"):
                raise ConfigError(f"tokenizer.{key}: only choice or grid make sense here")
            options.append(list(args))
        else:
            options.append([value])
        keys.append(key)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*options)]


def setting_key(setting: dict) -> str:
    blob = json.dumps(setting, sort_keys=True).encode()
    return f"nw{setting['num_words']}-len{setting['maxlen']}-" + hashlib.sha1(blob).hexdigest()[:8]


def prepare_arrays(cfg: SweepConfig, splits: dict[str, LabeledTexts], data_dir: Path) -> dict:
    """Tokenize every split once per setting; returns {setting_key: folder}."""
    folders = {}
    for setting in tokenizer_settings(cfg):
        key = setting_key(setting)
        folder = data_dir / key
        folders[key] = str(folder)
        if (folder / "done").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tok = Tokenizer(num_words=setting["num_words"], oov_token=setting["oov_token"] or None)
        tok.fit_on_texts(splits["train"].texts)
        for name, data in splits.items():
            np.save(folder / f"x_{name}.npy", tok.encode(data.texts, maxlen=setting["maxlen"]))
            np.save(folder / f"y_{name}.npy", data.labels.astype(np.float32))
        (folder / "tokenizer.json").write_text(tok.to_json(), encoding="utf-8")
        (folder / "setting.json").write_text(json.dumps(setting), encoding="utf-8")
        (folder / "done").write_text("")
    return folders
