"""The IMDB sample shipped inside the package (1,000 reviews per split, JSON Lines)."""

from __future__ import annotations

from pathlib import Path

from .readers import CorpusError

SAMPLE_DIR = Path(__file__).resolve().parent / "imdb_sample"


def sample_path(split: str) -> Path:
    """The shipped sample's ``train`` or ``test`` split."""
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    path = SAMPLE_DIR / f"{split}.jsonl"
    if not path.is_file():
        raise CorpusError("the shipped IMDB sample is missing from this installation")
    return path
