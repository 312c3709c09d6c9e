"""A bad config fails before any trial starts, for every key, and names the key."""

from __future__ import annotations

import json
import re

import pytest
from helpers import tiny_sweep_config

from critic.orchestrator.config import ConfigError, SweepConfig


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # Unknown keys inside sections were ignored, their defaults used.
        ({"training": {"epoch": 10}}, "training.epoch: unknown key; known: epochs"),
        ({"search": {"num_sample": 50}}, "search.num_sample: unknown key; known: num_samples"),
        (
            {"dataset": {"kind": "imdb", "vaidation_fraction": 0.9}},
            "dataset.vaidation_fraction: unknown key; known: kind, validation_fraction",
        ),
        ({"resources": {"cpus": 64}}, "resources.cpus: unknown key; known: cpu, gpu"),
        ({"model": {"unit": 8}}, "model.unit: unknown key"),
        # Wrong types were converted silently.
        ({"training": {"epochs": 1.9}}, "training.epochs: must be an integer, got 1.9"),
        ({"training": {"epochs": True}}, "training.epochs: must be an integer, got True"),
        ({"top_k": "many"}, "top_k: must be an integer, got 'many'"),
        ({"resources": {"cpu": "two"}}, "resources.cpu: must be a number, got 'two'"),
        ({"search": {"max_failures": -1}}, "search.max_failures: must be greater than or equal"),
        ({"tokenizer": {"num_words": 1.5}}, "tokenizer.num_words: must be an integer, got 1.5"),
        ({"tokenizer": {"maxlen": {"choice": [50, "x"]}}}, "tokenizer.maxlen: must be an integer"),
        ({"model": {"units": {"randint": [1.5, 3]}}}, "model.units: randint needs integer"),
        ({"model": {"units": 1.5}}, "model.units: must be an integer, got 1.5"),
        ({"model": {"reverse": "no"}}, "model.reverse: must be true or false, got 'no'"),
        ({"model": {"learning_rate": "1e-3"}}, "write it with a dot"),
        ({"model": {"learning_rate": 0.0}}, "model.learning_rate: must be > 0"),
        # A name is one folder under storage_path.
        ({"name": "../../../x"}, "name: must be one folder name"),
        ({"name": "a/b"}, "name: must be one folder name"),
        ({"dataset": [1, 2]}, "dataset: must be a mapping, got [1, 2]"),
        ({"training": 5}, "training: must be a mapping, got 5"),
        ({"dataset": {"kind": "csv"}}, "dataset.kind: must be one of"),
        ({"dataset": {"validation_fraction": 1.5}}, "dataset.validation_fraction: must be less"),
        (
            {"dataset": {"kind": "files", "train": "a.csv", "test": "b.csv", "labels": ["x"]}},
            "dataset.labels: list should have at least 2 items",
        ),
        ({"dataset": {"kind": "files", "train": "a.csv"}}, "dataset.test: required"),
    ],
)
def test_every_key_is_checked_and_named(tmp_path, change, message):
    with pytest.raises(ConfigError) as caught:
        SweepConfig.from_dict(tiny_sweep_config(tmp_path, **change))
    assert message in str(caught.value)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("storage", ["/", "~", "/etc", "/usr/lib/runs", "/proc/self", "/var"])
def test_runs_never_go_into_the_root_home_or_system_folders(tmp_path, storage):
    """storage_path: / once wrote a sweep into /sample-sweep and exited 0."""
    with pytest.raises(ConfigError, match=r"storage_path .* runs do not go into"):
        SweepConfig.from_dict(tiny_sweep_config(tmp_path, storage_path=storage))
    # Beside them, a folder of its own is fine.
    fine = SweepConfig.from_dict(tiny_sweep_config(tmp_path, storage_path=str(tmp_path / "r")))
    assert fine.storage_path == str(tmp_path / "r")


def test_a_good_config_still_loads_with_its_values(tmp_path):
    cfg = SweepConfig.from_dict(
        tiny_sweep_config(
            tmp_path, training={"epochs": 4, "batch_size": 16}, resources={"cpu": 0.5}, top_k=2
        )
    )
    assert (cfg.training.epochs, cfg.training.batch_size, cfg.resources.cpu, cfg.top_k) == (
        4,
        16,
        0.5,
        2,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the config is empty"),
        ("# only a comment\n", "the config is empty"),
        ("training: {epochs: [1, 2}\n", "not valid YAML: expected ',' or ']'"),
        ("name: [unclosed\n", "not valid YAML"),
        ("- 1\n- 2\n", "the config must be a mapping of sections"),
        ("a: &a [1, 1]\nb: [*a, *a]\n", "YAML aliases (*name) are not supported"),
    ],
)
def test_config_files_that_are_not_configs(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        SweepConfig.load(path)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Seven levels of nine aliases: 9**7 (4.8M) leaves from a few hundred bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size < 1000
    with pytest.raises(ConfigError, match=r"bomb.yaml:2: YAML aliases"):
        SweepConfig.load(path)


@pytest.mark.parametrize("text", ["[" * 50_000 + "]" * 50_000, "- " * 50_000 + "x\n"])
def test_a_deeply_nested_config_is_one_clear_error(tmp_path, text):
    """50,000 nested lists were an uncaught RecursionError with a traceback."""
    path = tmp_path / "deep.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep.yaml:\d+: nested more than 32 levels deep"):
        SweepConfig.load(path)


def test_binary_and_huge_files_are_refused(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00x\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        SweepConfig.load(binary)
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\n" + "# padding\n" * 200_000, encoding="utf-8")
    with pytest.raises(ConfigError, match="too large for a config"):
        SweepConfig.load(huge)


def test_the_shipped_configs_load_and_a_stored_config_reloads_the_same(tmp_path, monkeypatch):
    """Every shipped config passes the schema and the rules that tie keys together (its data
    aside: the full-data ones read $CRITIC_IMDB), names itself after its file, and runs at
    least one trial; a stored sweep.json (what --resume reloads) gives back the same config."""
    from pathlib import Path

    from critic.orchestrator.sweep import expected_trials
    from critic.orchestrator.zoo import FAMILIES

    configs = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
    assert len(configs) >= 2
    monkeypatch.delenv("CRITIC_IMDB", raising=False)
    for path in configs:
        from critic.orchestrator.config import read_yaml

        cfg = SweepConfig.from_dict(read_yaml(path), base_dir=path.parent, check_data=False)
        assert cfg.name.replace("-", "_") == path.stem, path
        assert expected_trials(cfg) >= 1 and set(cfg.families) <= set(FAMILIES), path
    cfg = SweepConfig.from_dict(tiny_sweep_config(tmp_path))
    stored = json.loads(json.dumps(cfg.to_dict()))
    reloaded = SweepConfig.from_dict(
        {k: v for k, v in stored.items() if k != "base_dir"}, base_dir=Path(stored["base_dir"])
    )
    assert reloaded == cfg
    assert reloaded.dataset.limit == 400 and reloaded.tokenizer.maxlen == 48


def test_the_config_reference_lists_every_key():
    """docs/configs.md names every key of every section (and of ModelSpec), with the
    schema's own default beside it: the page cannot fall behind the schema unseen."""
    import dataclasses
    from pathlib import Path

    from critic.orchestrator import schema
    from critic.orchestrator.zoo import ModelSpec

    page = (Path(__file__).resolve().parent.parent / "docs" / "configs.md").read_text()
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 2:
            for key in re.findall(r"`([a-z_.]+)`", cells[0]):
                rows[key.rsplit(".", 1)[-1]] = cells[1]
    sections = [schema.Sweep, schema.Search, schema.Training, schema.Resources, schema.Tokenizer]
    sections += list(schema.DATASETS.values())
    missing, wrong = [], []
    for model in sections:
        for key, field in model.model_fields.items():
            if model is schema.Sweep and key in ("dataset", "tokenizer", "model", *schema.SECTIONS):
                continue  # a section: a heading of its own
            if key == "kind":  # each kind's own literal; the page gives the default kind
                assert rows.get(key) == f"`{schema.DEFAULT_KIND}`"
            elif key not in rows:
                missing.append(f"{model.__name__}.{key}")
            elif not field.is_required() and isinstance(field.default, (int, float, str)):
                if str(field.default).lower() not in rows[key].replace(",", "").lower():
                    wrong.append(f"{key}: {field.default!r} vs {rows[key]!r}")
    missing += [f"model.{f.name}" for f in dataclasses.fields(ModelSpec) if f.name not in rows]
    assert not missing and not wrong, (missing, wrong)
