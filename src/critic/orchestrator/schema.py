"""The shape of a sweep config: every section, every key, its type, range and default.

The typed models here are the config: :class:`Sweep` holds one model per section
(``cfg.training.epochs``), and every key's default lives in its field, nowhere else.
``check_document`` validates a raw config (as YAML loads it) and raises ``ConfigError`` naming
the key (``training.epochs: must be an integer, got 1.9``); :func:`parse_document` then returns
the typed :class:`Sweep`. Search spaces are checked value by value: each value a
``choice``/``grid`` can take, both ends of a range. The model section is a search space over
:class:`~.zoo.ModelSpec` (typed and defaulted there). The rules that tie keys together (pbt
needs a learning-rate range, reversed models need post padding, ...) stay in :mod:`.config`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from critic.data.kinds import KINDS

SPACES = ("choice", "uniform", "loguniform", "randint", "grid")
# A run name becomes one folder under storage_path: no separators, no "..".
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

PositiveInt = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class ConfigError(ValueError):
    """A sweep configuration that cannot run (raised before any trial starts)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Split(_Section):
    kind: str  # each kind's own Literal
    validation_fraction: Fraction = 0.2
    seed: int = 13
    limit: PositiveInt | None = None


class ImdbDataset(_Split):
    kind: Literal["imdb"] = "imdb"
    path: str | None = None
    # sentiment: neg/pos; rating: the 8 star ratings in the file names (1-4, 7-10)
    target: Literal["sentiment", "rating"] = "sentiment"


class FilesDataset(_Split):
    kind: Literal["files"] = "files"
    train: str
    test: str
    text_column: str = "text"
    label_column: str = "label"
    # The classes in order (k >= 2); unset: those found in the training file (0/1 is
    # neg/pos, numbers sort as numbers)
    labels: Annotated[list[str], Field(min_length=2)] | None = None


class ImdbNpzDataset(_Split):
    kind: Literal["imdb_npz"] = "imdb_npz"
    path: str
    word_index: str


DATASETS: dict[str, type[_Split]] = {
    "imdb": ImdbDataset,
    "files": FilesDataset,
    "imdb_npz": ImdbNpzDataset,
}
assert set(DATASETS) == set(KINDS), "every dataset kind has a schema"
Dataset = Annotated[ImdbDataset | FilesDataset | ImdbNpzDataset, Field(discriminator="kind")]
DEFAULT_KIND = "imdb"


class Search(_Section):
    num_samples: PositiveInt = 1
    scheduler: Literal["asha", "pbt", "fifo"] = "asha"
    search_alg: Literal["random", "grid", "optuna"] = "random"
    max_concurrent_trials: PositiveInt = 2
    max_failures: Annotated[int, Field(ge=0)] = 2
    grace_period: PositiveInt = 1
    checkpoints_to_keep: PositiveInt | None = None


class Training(_Section):
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 64
    refit: bool = False


class Resources(_Section):
    cpu: Annotated[float, Field(ge=0)] = 1
    gpu: Annotated[float, Field(ge=0)] = 0


class Tokenizer(_Section):
    """Each key a fixed value or a choice/grid space over values of ``TOKENIZER_TYPES[key]``
    (checked value by value in :func:`check_document`).

    padding: where pad_sequences puts the zeros ("pre" as in the Keras recipe; "post" for
    models that read the review backwards, so the padding comes first for them too).
    ngrams / distinct: "auto" gives each model family the ids it reads
    (``zoo.FAMILY_FEATURES``); n-gram rows hold maxlen x ngrams ids (words, then n-grams).
    The n-gram vocabulary keeps the max_ngrams most frequent n-grams seen ngram_min_count
    times in training, or, with hash_buckets > 0, hashes every n-gram into that many ids."""

    num_words: Any = 20000
    maxlen: Any = 500
    oov_token: Any = "<OOV>"
    padding: Any = "pre"
    ngrams: Any = "auto"
    distinct: Any = "auto"
    max_ngrams: Any = 200000
    ngram_min_count: Any = 2
    hash_buckets: Any = 0


class _Outline(_Section):
    """The top level of a config, sections as plain mappings (each checked on its own)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "sweep"
    dataset: dict[str, Any] | None = None
    tokenizer: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    storage_path: Annotated[str, Field(min_length=1)] = "runs"
    top_k: PositiveInt = 3
    ensemble: PositiveInt = 1


SECTIONS: dict[str, type[_Section]] = {
    "search": Search,
    "training": Training,
    "resources": Resources,
}


class Sweep(_Section):
    """A checked sweep config, typed section by section."""

    name: str = _Outline.model_fields["name"].default
    dataset: Dataset = Field(default_factory=ImdbDataset)
    tokenizer: Tokenizer = Field(default_factory=Tokenizer)
    # A search space over zoo.ModelSpec: its keys, each a fixed value or a space.
    model: dict[str, Any] = Field(default_factory=dict)
    search: Search = Field(default_factory=Search)
    training: Training = Field(default_factory=Training)
    resources: Resources = Field(default_factory=Resources)
    storage_path: str = _Outline.model_fields["storage_path"].default
    top_k: int = _Outline.model_fields["top_k"].default
    # The run's model (what `critic run` exports and scores): the mean of its `ensemble` best
    # trials, each refit on train + validation when training.refit is on.
    ensemble: int = _Outline.model_fields["ensemble"].default


# One type per tokenizer key; a search space over a key gives values of the same type.
TOKENIZER_TYPES: dict[str, Any] = {
    "num_words": PositiveInt,
    "maxlen": PositiveInt,
    "oov_token": str | None,
    "padding": Literal["pre", "post"],
    "ngrams": Literal["auto", 1, 2, 3],
    "distinct": Literal["auto", True, False],
    "max_ngrams": PositiveInt,
    "ngram_min_count": PositiveInt,
    "hash_buckets": Annotated[int, Field(ge=0)],
}
assert set(TOKENIZER_TYPES) == set(Tokenizer.model_fields), "every tokenizer key has a type"
_TOKENIZER_ADAPTERS = {
    key: TypeAdapter(kind, config=ConfigDict(strict=True)) for key, kind in TOKENIZER_TYPES.items()
}


def check_document(raw: Any) -> None:
    """Raise ConfigError on the first key of ``raw`` that is unknown, mistyped or out of range."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of sections, got {_show(raw)}")
    _validate(_Outline, raw, "")
    for section, model in SECTIONS.items():
        _validate(model, raw.get(section) or {}, f"{section}.")
    dataset = raw.get("dataset") or {}
    kind = dataset.get("kind", DEFAULT_KIND)
    if kind not in DATASETS:
        raise ConfigError(f"dataset.kind: must be one of {tuple(DATASETS)}, got {_show(kind)}")
    _validate(DATASETS[kind], {"kind": kind, **dataset}, "dataset.")
    for key, value in (raw.get("tokenizer") or {}).items():
        if key not in _TOKENIZER_ADAPTERS:
            raise ConfigError(f"tokenizer.{key}: unknown key; known: {', '.join(TOKENIZER_TYPES)}")
        for one in space_values(f"tokenizer.{key}", value):
            _validate_value(_TOKENIZER_ADAPTERS[key], one, f"tokenizer.{key}")
    for key, value in (raw.get("model") or {}).items():
        space_values(f"model.{key}", value)


def parse_document(raw: Any) -> Sweep:
    """The typed config of a raw document (``check_document`` first: its errors name keys)."""
    check_document(raw)
    sections = {key: raw.get(key) or {} for key in ("tokenizer", "model", *SECTIONS)}
    dataset = {"kind": DEFAULT_KIND, **(raw.get("dataset") or {})}
    return Sweep.model_validate({**raw, **sections, "dataset": dataset})


def space_values(where: str, value: Any) -> list[Any]:
    """The values to check for a fixed setting or a search space: every value of a
    choice/grid, both ends of a range. Raises ConfigError on a malformed space."""
    if not isinstance(value, dict):
        return [value]
    if len(value) != 1 or next(iter(value)) not in SPACES:
        raise ConfigError(f"{where}: a search space is one of {SPACES}, got {_show(value)}")
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: {kind} needs a non-empty list, got {_show(args)}")
    if kind in ("choice", "grid"):
        return list(args)
    if len(args) != 2 or not all(_is_number(a) for a in args):
        raise ConfigError(f"{where}: {kind} needs [low, high] numbers, got {_show(args)}")
    if not args[0] < args[1]:
        raise ConfigError(f"{where}: {kind} needs low < high, got {_show(args)}")
    if kind == "loguniform" and args[0] <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0, got {_show(args)}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ConfigError(f"{where}: randint needs integer bounds, got {_show(args)}")
    return list(args)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate(model: type[BaseModel], raw: dict[str, Any], prefix: str) -> None:
    try:
        model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(e.errors()[0], prefix, model)) from None


def _validate_value(adapter: TypeAdapter, value: Any, where: str) -> None:
    try:
        adapter.validate_python(value)
    except ValidationError as e:
        raise ConfigError(_describe(e.errors()[0], where, None)) from None


def _describe(error: dict[str, Any], prefix: str, model: type[BaseModel] | None) -> str:
    """One pydantic error as ``key: what is wrong, got VALUE``."""
    loc = [str(part) for part in error["loc"] if not isinstance(part, int) or part]
    # A union reports the member it tried ("int", "literal[...]"): not a key of ours.
    loc = [part for part in loc if not part.startswith(("literal[", "function-"))]
    loc = [part for part in loc if part not in ("int", "str", "bool", "float", "none")]
    where = prefix + ".".join(loc) if loc else prefix.rstrip(".")
    if error["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields) if model else ""
        return f"{where}: unknown key; known: {known}"
    if error["type"] == "string_pattern_mismatch" and where == "name":
        return (
            f"name: must be one folder name (letters, digits, '.', '_', '-'), "
            f"got {_show(error.get('input'))}"
        )
    if error["type"] == "missing":
        return f"{where}: required"
    value = error.get("input")
    return f"{where}: {_wording(error['msg'])}, got {_show(value)}{yaml_number_hint(value)}"


def _wording(message: str) -> str:
    message = message[0].lower() + message[1:]
    for old, new in (
        ("input should be", "must be"),
        ("a valid integer", "an integer"),
        ("a valid number", "a number"),
        ("a valid boolean", "true or false"),
        ("a valid string", "text"),
        ("a valid dictionary", "a mapping"),
        ("a valid list", "a list"),
    ):
        message = message.replace(old, new)
    return message


def yaml_number_hint(value: Any) -> str:
    """YAML 1.1 reads ``1e-3`` (no dot) as text, a classic surprise in configs."""
    if isinstance(value, str) and "e" in value.lower():
        try:
            float(value)
        except ValueError:
            return ""
        return f" (YAML reads {value} as text: write it with a dot, e.g. 1.0e-3)"
    return ""


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
