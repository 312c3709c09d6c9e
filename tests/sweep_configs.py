"""A tiny sweep config on the shipped sample, shared by the sweep tests."""

from __future__ import annotations

from pathlib import Path

from critic.corpus import sample_path


def tiny_sweep_config(tmp_path: Path, **overrides) -> dict:
    """Sections given as overrides replace the defaults whole."""
    cfg = {
        "name": "tiny",
        "dataset": {
            "kind": "files",
            "train": str(sample_path("train")),
            "test": str(sample_path("test")),
            "limit": 400,
            "seed": 5,
        },
        "tokenizer": {"num_words": 1000, "maxlen": 48},
        "model": {
            "family": {"choice": ["lstm", "conv1d"]},
            "embedding_dim": 8,
            "units": {"randint": [4, 9]},
            "filters": 8,
        },
        "search": {"num_samples": 4, "scheduler": "asha", "max_concurrent_trials": 2},
        "training": {"epochs": 2, "batch_size": 64},
        "resources": {"cpu": 1},
        "storage_path": str(tmp_path / "runs"),
        "top_k": 2,
    }
    cfg.update(overrides)
    return cfg
