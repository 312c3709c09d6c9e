"""The samples shipped inside the package (JSON Lines, a train and a test split each): IMDB
(1,000 reviews per split, neg/pos) and review topics (3 classes: 2,100 + 900 sentences)."""

from __future__ import annotations

from pathlib import Path

from .readers import CorpusError

SAMPLE_DIR = Path(__file__).resolve().parent / "imdb_sample"
TOPICS_DIR = Path(__file__).resolve().parent / "topics_sample"


def sample_path(split: str) -> Path:
    """The shipped IMDB sample's ``train`` or ``test`` split."""
    return _shipped(SAMPLE_DIR, split, "IMDB sample")


def topics_path(split: str) -> Path:
    """The shipped 3-class sample's ``train`` or ``test`` split (label column ``topic``)."""
    return _shipped(TOPICS_DIR, split, "topics sample")


def _shipped(folder: Path, split: str, what: str) -> Path:
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        raise CorpusError(f"the shipped {what} is missing from this installation")
    return path
