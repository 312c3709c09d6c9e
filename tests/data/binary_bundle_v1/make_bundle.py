"""Rebuild this fixture: a binary bundle exported by critic before bundles could hold more
than two labels, and its scores on the topics sample's test sentences. Run it with that
critic (commit f31ead3) on the path: python make_bundle.py OUT_DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from critic.data.datasets import read_labeled
from critic.export import ExportSource, export_bundle
from critic.kernels import Tokenizer
from critic.orchestrator.zoo import ModelSpec, build_model
from critic.serve import Runtime

TOPICS = Path(__file__).resolve().parents[3] / "src" / "critic" / "data" / "topics_sample"


def main(out: Path) -> None:
    import keras

    keras.utils.set_random_seed(7)
    train = read_labeled(TOPICS / "train.jsonl", label_column="sentiment")
    texts, labels = train.texts[:400], train.labels[:400]
    tok = Tokenizer(num_words=1000, oov_token="<OOV>")
    tok.fit_on_texts(texts)
    x = tok.encode(texts, maxlen=30)
    spec = {"family": "lstm", "num_words": 1000, "maxlen": 30, "embedding_dim": 8, "units": 8}
    model = build_model(ModelSpec.from_dict(spec))
    model.fit(x, labels.astype(np.float32), epochs=3, batch_size=32, verbose=0)
    model.save(out / "model.keras")
    source = ExportSource(out / "model.keras", tok.to_json(), labels=("negative", "positive"))
    export_bundle(source, out / "bundle", log=lambda _: None)
    (out / "model.keras").unlink()
    test = read_labeled(TOPICS / "test.jsonl", label_column="sentiment").texts[:100]
    runtime = Runtime.load(out / "bundle")
    p = runtime.predict(test)
    expected = {"texts": test, "probabilities": p.tolist(), "labels": runtime.to_labels(p).tolist()}
    (out / "expected.json").write_text(json.dumps(expected, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
