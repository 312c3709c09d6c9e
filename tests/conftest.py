"""Shared fixtures: the shipped IMDB sample and the real Keras reference implementation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ci_guard import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from critic.data.sample import SAMPLE_DIR


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# Tests using these fixtures belong to the slow tiers (pyproject.toml's markers).
TF_FIXTURES = {"keras_text", "keras_pad", "sample_bundle"}
RAY_FIXTURES = {"ray_local"}


def pytest_collection_modifyitems(items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & TF_FIXTURES:
            item.add_marker(pytest.mark.tf)
        if names & RAY_FIXTURES:
            item.add_marker(pytest.mark.ray)


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


@pytest.fixture(scope="module")
def ray_local():
    """An embedded 2-CPU Ray for one test module, shut down after it (so the next module
    can start its own)."""
    ray = pytest.importorskip("ray")
    ray.shutdown()  # a Ray left running by code under test in an earlier module
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory):
    """A small LSTM trained on the sample with critic's tokenizer, exported as a bundle
    (with an int8 variant): (bundle folder, Keras model, critic Tokenizer)."""
    pytest.importorskip("tf2onnx")
    import numpy as np

    from critic.data.datasets import read_labeled
    from critic.data.sample import sample_path
    from critic.export import ExportSource, export_bundle
    from critic.kernels import Tokenizer
    from critic.orchestrator.zoo import ModelSpec, build_model

    tmp = tmp_path_factory.mktemp("runtime")
    train = read_labeled(sample_path("train"))
    tok = Tokenizer(num_words=2000, oov_token="<OOV>")
    tok.fit_on_texts(train.texts)
    x = tok.encode(train.texts, maxlen=80)
    spec = {"family": "lstm", "num_words": 2000, "maxlen": 80, "embedding_dim": 8, "units": 8}
    model = build_model(ModelSpec.from_dict(spec))
    model.fit(x, train.labels.astype(np.float32), epochs=2, batch_size=64, verbose=0)
    model.save(tmp / "model.keras")
    source = ExportSource(tmp / "model.keras", tok.to_json(), labels=("negative", "positive"))
    export_bundle(source, tmp / "bundle", quantize="int8", log=lambda _: None)
    return tmp / "bundle", model, tok


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's standalone server) over HTTP on 127.0.0.1, for the
    whole session: its endpoint URL."""
    from processes import s3_server

    with s3_server("moto", tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint


S3_ENV = {"AWS_ACCESS_KEY_ID": "critic", "AWS_SECRET_ACCESS_KEY": "critic-secret"}


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, request):
    """A fresh bucket on the test S3 server, with the standard AWS variables pointing at it
    (set for this process and inherited by subprocesses): its ``s3://`` URI."""
    import re

    import pyarrow.fs as pafs

    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_server, "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    bucket = f"{name}-{abs(hash(request.node.nodeid)) % 10**8}"
    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true")
    fs.create_dir(bucket)
    return f"s3://{bucket}"
