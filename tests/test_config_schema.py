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


def test_a_good_config_still_loads_with_its_values(tmp_path):
    cfg = SweepConfig.from_dict(
        tiny_sweep_config(
            tmp_path, training={"epochs": 4, "batch_size": 16}, resources={"cpu": 0.5}, top_k=2
        )
    )
    assert (cfg.epochs, cfg.batch_size, cfg.resources["cpu"], cfg.top_k) == (4, 16, 0.5, 2)


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


def test_binary_and_huge_files_are_refused(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00x\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        SweepConfig.load(binary)
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\n" + "# padding\n" * 200_000, encoding="utf-8")
    with pytest.raises(ConfigError, match="too large for a config"):
        SweepConfig.load(huge)


def test_the_shipped_configs_pass_the_schema(tmp_path):
    from pathlib import Path

    from critic.orchestrator.schema import check_document

    configs = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
    assert configs
    import yaml

    for path in configs:
        check_document(yaml.safe_load(path.read_text(encoding="utf-8")))
    # And a stored sweep.json (what --resume reloads) passes it too.
    cfg = SweepConfig.from_dict(tiny_sweep_config(tmp_path))
    stored = json.loads(json.dumps(cfg.to_dict()))
    check_document({k: v for k, v in stored.items() if k != "base_dir"})
