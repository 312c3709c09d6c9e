"""Rebuild this sample from the full IMDB parquet files (reproducible, seeded).

Usage: python make_sample.py PATH/TO/imdb  (a folder holding train.parquet and test.parquet)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

PER_SPLIT = 1000  # rows per split, half positive and half negative
SEED = 20111


def sample(path: Path, seed: int) -> list[dict]:
    table = pq.read_table(path).to_pydict()
    labels = np.asarray(table["label"])
    rng = np.random.default_rng(seed)
    picked = []
    for label in (0, 1):
        rows = np.flatnonzero(labels == label)
        picked.extend(rng.choice(rows, PER_SPLIT // 2, replace=False).tolist())
    picked = rng.permutation(picked).tolist()
    return [{k: table[k][i] for k in ("id", "rating", "label", "text")} for i in picked]


def main(src: str) -> None:
    here = Path(__file__).parent
    for split, seed in (("train", SEED), ("test", SEED + 1)):
        rows = sample(Path(src) / f"{split}.parquet", seed)
        with open(here / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
