"""Sweep configuration: a YAML file, validated before any trial starts.

```yaml
name: imdb-lstm
dataset: {kind: imdb, path: aclImdb_v1.tar.gz, validation_fraction: 0.2, seed: 13}
# (kind imdb without a path: --imdb PATH or $CRITIC_IMDB; kinds: critic.data.kinds)
tokenizer: {num_words: 20000, maxlen: 500, oov_token: "<OOV>"}
model:                       # fixed values or search spaces
  family: {choice: [lstm, gru]}
  units: {randint: [32, 128]}
  learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
search: {num_samples: 8, scheduler: asha, search_alg: random, max_concurrent_trials: 2}
training: {epochs: 3, batch_size: 64}
resources: {cpu: 1, gpu: 0}
storage_path: runs
```
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from critic.data.archives import IMDB_ENV
from critic.data.kinds import dataset_kind
from critic.storage import Location, is_uri, location

from .zoo import FAMILY_FEATURES, SEQUENCE_FEATURES, ModelSpec

SPACES = ("choice", "uniform", "loguniform", "randint", "grid")
SCHEDULERS = ("asha", "pbt", "fifo")
SEARCH_ALGS = ("random", "grid", "optuna")
# padding: where pad_sequences puts the zeros ("pre" as in the Keras recipe; "post" for models
# that read the review backwards, so the padding comes first for them too).
# ngrams / distinct: "auto" gives each model family the ids it reads (zoo.FAMILY_FEATURES);
# n-gram rows hold maxlen x ngrams ids (words, then n-grams). The n-gram vocabulary keeps the
# max_ngrams most frequent n-grams seen ngram_min_count times in training, or, with
# hash_buckets > 0, hashes every n-gram into that many ids.
TOKENIZER_DEFAULTS = {
    "num_words": 20000,
    "maxlen": 500,
    "oov_token": "<OOV>",
    "padding": "pre",
    "ngrams": "auto",
    "distinct": "auto",
    "max_ngrams": 200000,
    "ngram_min_count": 2,
    "hash_buckets": 0,
}
TOKENIZER_KEYS = tuple(TOKENIZER_DEFAULTS)
NGRAM_KEYS = ("max_ngrams", "ngram_min_count", "hash_buckets")


class ConfigError(ValueError):
    """A sweep configuration that cannot run (raised before any trial starts)."""


@dataclass
class SweepConfig:
    name: str = "sweep"
    dataset: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    storage_path: str = "runs"
    top_k: int = 3
    base_dir: Path = field(default_factory=Path.cwd)

    @classmethod
    def load(cls, path: str | Path, imdb: str | Path | None = None) -> SweepConfig:
        """A config file; ``imdb`` (a folder or .tar.gz) runs it on the full aclImdb data."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
        if imdb is not None:
            raw = on_imdb(raw, imdb)
        return cls.from_dict(raw, base_dir=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: Path | None = None) -> SweepConfig:
        if not isinstance(raw, dict):
            raise ConfigError("the config must be a mapping")
        dataset = raw.get("dataset") or {}
        if isinstance(dataset, dict) and dataset.get("kind", "imdb") == "imdb":
            if not dataset.get("path") and os.environ.get(IMDB_ENV):
                raw = on_imdb(raw, os.environ[IMDB_ENV])  # pinned, so a resume finds it
        known = {f.name for f in fields(cls)} - {"base_dir"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown config section(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**raw, base_dir=Path(base_dir or Path.cwd()))
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The config as loaded (JSON-friendly), to store beside a run and reload on resume."""
        return {**asdict(self), "base_dir": str(self.base_dir)}

    # -- derived settings --------------------------------------------------------------
    @property
    def tokenizer_space(self) -> dict[str, Any]:
        """The tokenizer section with defaults filled in (values may be search spaces)."""
        return {**TOKENIZER_DEFAULTS, **self.tokenizer}

    @property
    def epochs(self) -> int:
        return int(self.training.get("epochs", 3))

    @property
    def batch_size(self) -> int:
        return int(self.training.get("batch_size", 64))

    @property
    def num_samples(self) -> int:
        return int(self.search.get("num_samples", 1))

    def path(self, value: str | Path) -> Path | Location:
        """A config value naming data: a storage URI as a Location, a path relative to the
        config file's folder (resolved here, on the driver)."""
        if is_uri(value):
            return location(value)
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def validate(self) -> None:
        """Raise ConfigError on the first thing that would stop a trial."""
        self._validate_dataset()
        self._validate_training()
        self._validate_search()
        self._validate_spaces()
        self._validate_models()

    def _validate_dataset(self) -> None:
        try:
            kind = dataset_kind(self.dataset)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        problems = kind.problems(self.dataset, self.path)
        if problems:
            raise ConfigError(problems[0])
        frac = float(self.dataset.get("validation_fraction", 0.2))
        if not 0.0 < frac < 1.0:
            raise ConfigError(f"dataset.validation_fraction must be in (0, 1), got {frac}")

    def _validate_training(self) -> None:
        unknown = sorted(set(self.tokenizer) - set(TOKENIZER_KEYS))
        if unknown:
            raise ConfigError(f"unknown tokenizer setting(s) {unknown}; known: {TOKENIZER_KEYS}")
        if self.epochs < 1:
            raise ConfigError(f"training.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"training.batch_size must be >= 1, got {self.batch_size}")
        if not isinstance(self.training.get("refit", False), bool):
            raise ConfigError(
                f"training.refit must be true or false, got {self.training['refit']!r}"
            )
        for name in ("cpu", "gpu"):
            if float(self.resources.get(name, 1 if name == "cpu" else 0)) < 0:
                raise ConfigError(f"resources.{name} must be >= 0")

    def _validate_search(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"search.num_samples must be >= 1, got {self.num_samples}")
        sched = self.search.get("scheduler", "asha")
        if sched not in SCHEDULERS:
            raise ConfigError(f"search.scheduler must be one of {SCHEDULERS}, got {sched!r}")
        lr = self.model.get("learning_rate")
        if sched == "pbt" and not (is_space(lr) and next(iter(lr)) in ("uniform", "loguniform")):
            raise ConfigError(
                "scheduler pbt mutates model.learning_rate: give it a uniform or loguniform space"
            )
        alg = self.search.get("search_alg", "random")
        if alg not in SEARCH_ALGS:
            raise ConfigError(f"search.search_alg must be one of {SEARCH_ALGS}, got {alg!r}")
        if alg == "optuna" and importlib.util.find_spec("optuna") is None:
            raise ConfigError("search_alg 'optuna' needs optuna: pip install optuna")

    def _validate_spaces(self) -> None:
        for section, values in (("model", self.model), ("tokenizer", self.tokenizer)):
            for key, value in values.items():
                check_space(f"{section}.{key}", value)
        for key, value in self.tokenizer.items():
            # Each tokenizer value gets its own tokenized arrays: only finite choices.
            if is_space(value) and next(iter(value)) not in ("choice", "grid"):
                raise ConfigError(f"tokenizer.{key}: only choice or grid make sense here")
        self._validate_features()
        paddings = setting_values(self.tokenizer_space["padding"])
        if not set(paddings) <= {"pre", "post"}:
            raise ConfigError(f"tokenizer.padding must be 'pre' or 'post', got {paddings}")
        if "pre" in paddings and any(s.get("reverse") for s in corner_samples(self.model)):
            raise ConfigError(
                "model.reverse reads each review backwards, so with tokenizer.padding 'pre' "
                "it reads the padding last and forgets the review (it stays at 50 % on IMDB): "
                "set tokenizer.padding: post"
            )

    def _validate_features(self) -> None:
        space = self.tokenizer_space
        for value in setting_values(space["ngrams"]):
            if value != "auto" and (isinstance(value, bool) or value not in (1, 2, 3)):
                raise ConfigError(f"tokenizer.ngrams must be 'auto', 1, 2 or 3, got {value!r}")
        for value in setting_values(space["distinct"]):
            if value != "auto" and not isinstance(value, bool):
                raise ConfigError(f"tokenizer.distinct must be 'auto' or a boolean, got {value!r}")
        for key, low in (("max_ngrams", 1), ("ngram_min_count", 1), ("hash_buckets", 0)):
            for value in setting_values(space[key]):
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ConfigError(f"tokenizer.{key} must be an integer >= {low}, got {value!r}")
        if dataset_kind(self.dataset).word_index is not None:
            for family in self.families:
                setting = resolve_setting({k: first_value(v) for k, v in space.items()}, family)
                if setting["ngrams"] > 1 or setting["distinct"]:
                    raise ConfigError(
                        f"model family {family!r} reads n-gram or distinct ids, which need "
                        "review texts; this dataset kind holds word ranks"
                    )

    @property
    def families(self) -> list[str]:
        """Every model family the sweep can try."""
        return [str(f) for f in setting_values(self.model.get("family", "lstm"))]

    def _validate_models(self) -> None:
        """Every fixed or sampled model value must make a valid ModelSpec."""
        sizes = {k: first_value(self.tokenizer_space[k]) for k in ("num_words", "maxlen")}
        for sample in corner_samples(self.model):
            try:
                ModelSpec.from_dict({**sample, **sizes})
            except (TypeError, ValueError) as e:
                raise ConfigError(f"model: {e}") from e


def resolve_setting(setting: dict[str, Any], family: str) -> dict[str, Any]:
    """The concrete tokenizer setting a trial of ``family`` reads: "auto" features filled in
    from the family, n-gram keys dropped when there are no n-grams, maxlen scaled by the
    n-gram order."""
    resolved = {**TOKENIZER_DEFAULTS, **setting}
    for key, value in FAMILY_FEATURES.get(family, SEQUENCE_FEATURES).items():
        if resolved[key] == "auto":
            resolved[key] = value
    if resolved["ngrams"] == 1:
        for key in NGRAM_KEYS:
            resolved.pop(key)
    else:
        resolved["maxlen"] = int(resolved["maxlen"]) * int(resolved["ngrams"])
    return resolved


def on_imdb(raw: dict[str, Any], imdb: str | Path) -> dict[str, Any]:
    """A raw config on the full aclImdb data at ``imdb`` (resolved here, on the driver): an
    imdb config gets the path; any other keeps its split settings and is named ``NAME-imdb``."""
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a mapping")
    dataset = raw.get("dataset") or {}
    if not isinstance(dataset, dict):
        raise ConfigError("dataset must be a mapping")
    path = str(Path(imdb).expanduser().resolve())
    if dataset.get("kind", "imdb") == "imdb":
        return {**raw, "dataset": {**dataset, "path": path}}
    keep = {k: dataset[k] for k in ("validation_fraction", "seed") if k in dataset}
    name = f"{raw.get('name', 'sweep')}-imdb"
    return {**raw, "name": name, "dataset": {"kind": "imdb", "path": path, **keep}}


def setting_values(value: Any) -> list[Any]:
    """Every value a fixed setting or a choice/grid space can take."""
    return list(next(iter(value.values()))) if is_space(value) else [value]


def is_space(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SPACES


def check_space(where: str, value: Any) -> None:
    if isinstance(value, dict) and not is_space(value):
        raise ConfigError(f"{where}: a search space is one of {SPACES}, got {value!r}")
    if not is_space(value):
        return
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: {kind} needs a non-empty list, got {args!r}")
    if kind in ("uniform", "loguniform", "randint") and len(args) != 2:
        raise ConfigError(f"{where}: {kind} needs [low, high], got {args!r}")
    if kind in ("uniform", "loguniform", "randint") and not args[0] < args[1]:
        raise ConfigError(f"{where}: {kind} needs low < high, got {args!r}")
    if kind == "loguniform" and args[0] <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {args!r}")


def first_value(value: Any) -> Any:
    if not is_space(value):
        return value
    _, args = next(iter(value.items()))
    return args[0]


def corner_samples(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A few concrete settings covering every choice/grid value and both range ends."""
    options = {}
    for key, value in values.items():
        if is_space(value):
            kind, args = next(iter(value.items()))
            options[key] = (
                list(args)
                if kind in ("choice", "grid")
                else [args[0], args[1] - (1 if kind == "randint" else 0)]
            )
        else:
            options[key] = [value]
    longest = max((len(v) for v in options.values()), default=1)
    return [{k: v[i % len(v)] for k, v in options.items()} for i in range(longest)]


def to_tune_space(value: Any) -> Any:
    """Our YAML search-space syntax -> ray.tune search space objects."""
    from ray import tune

    if not is_space(value):
        return value
    kind, args = next(iter(value.items()))
    if kind == "choice":
        return tune.choice(args)
    if kind == "grid":
        return tune.grid_search(args)
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    return tune.randint(args[0], args[1])
