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
from pathlib import Path
from typing import Any

from pydantic import Field

from critic.classes import label_problem
from critic.data.archives import IMDB_ENV
from critic.data.kinds import dataset_kind
from critic.storage import Location, is_uri, location

from .schema import DEFAULT_KIND, SPACES, ConfigError, Sweep, Tokenizer, parse_document
from .zoo import FAMILY_FEATURES, SEQUENCE_FEATURES, ModelSpec

__all__ = ["ConfigError", "SweepConfig", "on_imdb", "resolve_setting", "to_tune_space"]
# A config is a few hundred bytes, a few levels deep; anything near these is not one.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 32
NGRAM_KEYS = ("max_ngrams", "ngram_min_count", "hash_buckets")
# A run is never written into the operating system's own folders (nor anything inside them),
# nor straight into the filesystem root, the home folder or these top-level folders.
SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
                  "/proc", "/run", "/sbin", "/sys", "/usr")  # fmt: skip
TOP_FOLDERS = ("/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/var")


class SweepConfig(Sweep):
    """A sweep config (:class:`~.schema.Sweep`) and the folder its relative paths start from."""

    base_dir: Path = Field(default_factory=Path.cwd)

    @classmethod
    def load(cls, path: str | Path, imdb: str | Path | None = None) -> SweepConfig:
        """A config file; ``imdb`` (a folder or .tar.gz) runs it on the full aclImdb data."""
        path = Path(path)
        raw = read_yaml(path)
        if imdb is not None:
            raw = on_imdb(raw, imdb)
        return cls.from_dict(raw, base_dir=path.parent)

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], base_dir: Path | None = None, check_data: bool = True
    ) -> SweepConfig:
        """A checked config; ``check_data=False`` skips the check that the dataset's files
        exist (a resume reads the run's prepared arrays, not the data)."""
        sweep = parse_document(raw)
        if sweep.dataset.kind == "imdb" and not sweep.dataset.path and os.environ.get(IMDB_ENV):
            sweep = parse_document(on_imdb(raw, os.environ[IMDB_ENV]))  # pinned for a resume
        # Every trial names its family (the spec's default unless the config gives one).
        model = {"family": ModelSpec.family, **sweep.model}
        fields = {name: getattr(sweep, name) for name in Sweep.model_fields}
        cfg = cls(**{**fields, "model": model}, base_dir=Path(base_dir or Path.cwd()))
        cfg.validate_rules(check_data)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """The config as loaded (JSON-friendly), to store beside a run and reload on resume."""
        return self.model_dump(mode="json")

    # -- derived settings --------------------------------------------------------------
    @property
    def tokenizer_space(self) -> dict[str, Any]:
        """Every tokenizer key with its value (values may be search spaces)."""
        return self.tokenizer.model_dump()

    def path(self, value: str | Path) -> Path | Location:
        """A config value naming data: a storage URI as a Location, a path relative to the
        config file's folder (resolved here, on the driver)."""
        if is_uri(value):
            return location(value)
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def validate_rules(self, check_data: bool = True) -> None:
        """Raise ConfigError on the first thing that would stop a trial. The schema
        (:mod:`.schema`) has checked every key's type and range; these are the rules that
        tie keys together, and (with ``check_data``) the files the dataset names."""
        if check_data:
            problems = dataset_kind(self.dataset).problems(self.dataset, self.path)
            if problems:
                raise ConfigError(problems[0])
        self._validate_storage_path()
        labels = getattr(self.dataset, "labels", None)
        if labels is not None and label_problem(labels):
            raise ConfigError(f"dataset.labels: {label_problem(labels)}, got {labels!r}")
        if self.ensemble > self.top_k:
            raise ConfigError(
                f"ensemble: {self.ensemble} members need top_k >= {self.ensemble} (the trials "
                f"scored on the test split), got top_k {self.top_k}"
            )
        self._validate_models()
        self._validate_search()
        self._validate_spaces()

    def _validate_storage_path(self) -> None:
        """Refuse a storage_path that would put runs into a system folder, the filesystem
        root or the home folder itself (a sweep writes hundreds of MB there)."""
        where = self.path(self.storage_path)
        if not isinstance(where, Path):
            return  # a storage URI: a bucket's root is a fine place for runs
        resolved = where.resolve()
        inside = [f for f in SYSTEM_FOLDERS if resolved == Path(f) or Path(f) in resolved.parents]
        if inside or str(resolved) in TOP_FOLDERS or resolved == Path.home().resolve():
            raise ConfigError(
                f"storage_path {self.storage_path!r} is {resolved}: runs do not go into the "
                "filesystem root, the home folder itself or a system folder; give a folder of "
                "their own, such as ~/critic-runs"
            )

    def _validate_search(self) -> None:
        lr = self.model.get("learning_rate")
        if self.search.scheduler == "pbt" and not (
            is_space(lr) and next(iter(lr)) in ("uniform", "loguniform")
        ):
            raise ConfigError(
                "scheduler pbt mutates model.learning_rate: give it a uniform or loguniform space"
            )
        if self.search.search_alg == "optuna" and importlib.util.find_spec("optuna") is None:
            raise ConfigError("search_alg 'optuna' needs optuna: pip install optuna")

    def _validate_spaces(self) -> None:
        for key, value in self.tokenizer_space.items():
            # Each tokenizer value gets its own tokenized arrays: only finite choices.
            if is_space(value) and next(iter(value)) not in ("choice", "grid"):
                raise ConfigError(f"tokenizer.{key}: only choice or grid make sense here")
        self._validate_features()
        paddings = setting_values(self.tokenizer.padding)
        if "pre" in paddings and any(s.get("reverse") for s in corner_samples(self.model)):
            raise ConfigError(
                "model.reverse reads each review backwards, so with tokenizer.padding 'pre' "
                "it reads the padding last and forgets the review (it stays at 50 % on IMDB): "
                "set tokenizer.padding: post"
            )

    def _validate_features(self) -> None:
        space = self.tokenizer_space
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
        return [str(f) for f in setting_values(self.model["family"])]

    def _validate_models(self) -> None:
        """Every fixed or sampled model value must make a valid ModelSpec."""
        if "classes" in self.model:
            raise ConfigError(
                "model.classes: set from the dataset's labels (two: one sigmoid output; more: "
                "softmax), not in the config"
            )
        sizes = {k: first_value(self.tokenizer_space[k]) for k in ("num_words", "maxlen")}
        for sample in corner_samples(self.model):
            try:
                ModelSpec.from_dict({**sample, **sizes})
            except (TypeError, ValueError) as e:
                raise ConfigError(f"model.{e}") from None


def read_yaml(path: Path) -> Any:
    """A config file's document. YAML aliases are refused: a few hundred bytes of nested
    aliases expand to gigabytes when the config is copied or stored."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            mark = self.peek_event().start_mark
            if self.check_event(yaml.AliasEvent):
                raise ConfigError(
                    f"{path}:{mark.line + 1}: YAML aliases (*name) are not supported in "
                    "configs; write the value out"
                )
            if self.depth >= MAX_CONFIG_DEPTH:  # before Python's own recursion limit
                raise ConfigError(
                    f"{path}:{mark.line + 1}: nested more than {MAX_CONFIG_DEPTH} levels deep; "
                    "a config is a few levels of sections and values"
                )
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a config")
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=NoAliases)  # a SafeLoader: no Python objects
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    if raw is None:
        raise ConfigError(f"{path}: the config is empty; see configs/ for examples")
    return raw


def _yaml_problem(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def resolve_setting(setting: dict[str, Any], family: str) -> dict[str, Any]:
    """The concrete tokenizer setting a trial of ``family`` reads: "auto" features filled in
    from the family, n-gram keys dropped when there are no n-grams, maxlen scaled by the
    n-gram order."""
    resolved = {**Tokenizer().model_dump(), **setting}
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
    path = str(imdb) if is_uri(imdb) else str(Path(imdb).expanduser().resolve())
    if dataset.get("kind", DEFAULT_KIND) == "imdb":
        return {**raw, "dataset": {**dataset, "path": path}}
    keep = {k: dataset[k] for k in ("validation_fraction", "seed") if k in dataset}
    name = f"{raw.get('name', 'sweep')}-imdb"
    return {**raw, "name": name, "dataset": {"kind": "imdb", "path": path, **keep}}


def setting_values(value: Any) -> list[Any]:
    """Every value a fixed setting or a choice/grid space can take."""
    return list(next(iter(value.values()))) if is_space(value) else [value]


def is_space(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SPACES


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
