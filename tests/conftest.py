"""Shared fixtures: the shipped IMDB sample and the real Keras reference implementation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "imdb_sample"


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def imdb_train() -> list[str]:
    return [r["text"] for r in _read_jsonl(SAMPLE_DIR / "train.jsonl")]


@pytest.fixture(scope="session")
def imdb_test() -> list[str]:
    return [r["text"] for r in _read_jsonl(SAMPLE_DIR / "test.jsonl")]


@pytest.fixture(scope="session")
def keras_text():
    """Keras' legacy text module, as tf.keras exposes it in TF 2.21."""
    tf = pytest.importorskip("tensorflow")
    return tf.keras.preprocessing.text


@pytest.fixture(scope="session")
def keras_pad(keras_text):
    import tensorflow as tf

    return tf.keras.utils.pad_sequences
