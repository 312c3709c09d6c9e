"""Rebuild this sample from the Sentiment Labelled Sentences CSV (reproducible, seeded).

Usage: python make_sample.py PATH/TO/uci_sentences.csv  (columns source, text, label)
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

# The source site of a sentence is its topic.
TOPICS = {"amazon_cells": "phones", "yelp": "restaurants", "imdb": "movies"}
TEST_PER_TOPIC = 300  # the rest of each topic's 1,000 sentences is training data
SEED = 2015


def main(src: str) -> None:
    with open(src, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(SEED)
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    for source, topic in TOPICS.items():
        mine = [r for r in rows if r["source"] == source]
        order = rng.permutation(len(mine))
        for n, i in enumerate(order):
            split = "test" if n < TEST_PER_TOPIC else "train"
            text = mine[i]["text"].strip()
            splits[split].append({"topic": topic, "sentiment": int(mine[i]["label"]), "text": text})
    here = Path(__file__).parent
    for split, picked in splits.items():
        with open(here / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for j in rng.permutation(len(picked)):
                row = picked[j]
                fh.write(json.dumps({"id": f"{split}-{j}", **row}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
