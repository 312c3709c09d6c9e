"""critic's model families against scikit-learn peers on IMDB: accuracy, train time, speed.

    python bench/bench_accuracy.py [--data ../shared/data] [--families nbsvm,fasttext,bow]
        [--bundle NAME=PATH ...]

One run, same splits for everyone: the 25,000 IMDB train reviews split 80/20 into train and
validation (critic's stratified split, seed 13), the 25,000 test reviews scored once.

- Peers (scikit-learn, C chosen on the validation split): TF-IDF (1,2) + LogisticRegression,
  and NBSVM-bi (binary uni+bigram counts scaled by the naive-Bayes log-count ratio + LR).
- critic: each family trained with Keras on critic's C++ features, the epoch chosen on the
  validation split, exported to a bundle (ONNX verified against Keras) and scored on raw
  test text by ``critic.Runtime``; the mean of the families' probabilities as an ensemble.
- ``--bundle``: an exported bundle (e.g. ``critic run --config configs/imdb_best.yaml``'s),
  scored and timed on the same texts beside the peers.
- Cross-domain: every model on ``uci_sentences`` (short Amazon / Yelp / IMDB sentences).
- Speed: raw text -> probability on the 25,000 test reviews, critic's Runtime at 1 and 2
  threads next to the peer's ``predict_proba(vectorizer.transform(texts))`` (scikit-learn is
  single-threaded here). All timings run at the end, interleaved (each of --repeat rounds
  times every model once), so a machine that speeds up or slows down during the run moves
  the peer and critic alike; medians are reported.

Writes bench/results/accuracy.{json,md}.

``--task rating``: IMDB's 8 star ratings (1-4, 7-10) as classes, same splits. Peers:
TF-IDF (1,2) + multinomial LogisticRegression (C chosen on the validation split, then refit
on train + validation) and fastText supervised (wordNgrams 2, shuffled training data, the
epoch count chosen on the validation split, then refit; ``pip install fasttext-numpy2``,
skipped with a note when absent). critic: the ``--bundle`` of ``critic run --config
configs/imdb_rating.yaml`` (its trials refit on train + validation too). Accuracy, macro-F1
and the mean absolute error in rating points on the 25,000 test reviews, and raw text ->
class speed, interleaved. Writes bench/results/accuracy_rating.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)

# Each family's recipe: tokenizer features and model settings (a swept config's best values).
RECIPES = {
    "nbsvm": {
        "features": {"ngrams": 3, "distinct": True, "max_ngrams": 1_000_000, "min_count": 2},
        "model": {"learning_rate": 0.002},
        "epochs": 3,
        "batch_size": 64,
    },
    "fasttext": {
        "features": {"ngrams": 2, "distinct": False, "max_ngrams": 200_000, "min_count": 2},
        "model": {"embedding_dim": 50, "dropout": 0.0, "learning_rate": 0.003},
        "epochs": 6,
        "batch_size": 32,
    },
    "bow": {
        "features": {"ngrams": 2, "distinct": True, "max_ngrams": 200_000, "min_count": 2},
        "model": {"hidden": 16, "dropout": 0.5, "learning_rate": 0.001},
        "epochs": 5,
        "batch_size": 64,
    },
}
NUM_WORDS = 20000
MAXLEN = 500


def load(data: Path, sample: bool = False):
    """The splits; ``sample``: the 1,000 + 1,000 reviews shipped with critic (the main job's
    data, split as its sample sweep splits them)."""
    from critic.data.datasets import read_labeled, stratified_split
    from critic.data.sample import sample_path

    def table(name):
        if sample:
            split = read_labeled(sample_path(name))
            return list(split.texts), split.labels.astype(np.float32)
        t = pq.read_table(data / "imdb" / f"{name}.parquet", columns=["text", "label"])
        return t.column("text").to_pylist(), np.asarray(t.column("label"), dtype=np.float32)

    texts, labels = table("train")
    tr, va = stratified_split(labels, 0.2, 13)
    test_texts, test_labels = table("test")
    uci = pacsv.read_csv(data / "uci_sentences" / "uci_sentences.csv")
    return {
        "train": ([texts[i] for i in tr], labels[tr]),
        "val": ([texts[i] for i in va], labels[va]),
        "test": (test_texts, test_labels),
        "uci": (uci.column("text").to_pylist(), np.asarray(uci.column("label"), np.float32)),
        "uci_source": uci.column("source").to_pylist(),
    }


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(((np.asarray(p) >= 0.5) == (y >= 0.5)).mean())


def by_source(p: np.ndarray, y: np.ndarray, sources: list[str]) -> dict[str, float]:
    src = np.asarray(sources)
    out = {s: accuracy(p[src == s], y[src == s]) for s in sorted(set(sources))}
    out["all"] = accuracy(p, y)
    return out


def interleaved_speeds(timed: dict[tuple[str, str], object], texts, repeat: int) -> dict:
    """texts/s of every ``(model, threads) -> predict`` on ``texts``: --repeat rounds, each
    timing every predict once, in turn; the median of each."""
    times: dict[tuple[str, str], list[float]] = {key: [] for key in timed}
    for _ in range(repeat):
        for key, predict in timed.items():
            start = time.perf_counter()
            predict(texts)
            times[key].append(time.perf_counter() - start)
    return {key: len(texts) / statistics.median(t) for key, t in times.items()}


# -- peers -----------------------------------------------------------------------------------
def peer_tfidf_lr(d):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform(d["train"][0])
    x_val = vec.transform(d["val"][0])
    best = max(
        (
            (accuracy(m.predict_proba(x_val)[:, 1], d["val"][1]), c, m)
            for c in C_GRID
            for m in [LogisticRegression(C=c, max_iter=2000).fit(x_train, d["train"][1])]
        ),
        key=lambda t: t[0],
    )
    val_acc, c, model = best
    seconds = time.perf_counter() - start

    def predict(texts):
        return model.predict_proba(vec.transform(texts))[:, 1]

    return {"name": "TF-IDF (1,2) + LR", "C": c, "val": val_acc, "train_seconds": seconds}, predict


def peer_nbsvm(d):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vec = CountVectorizer(ngram_range=(1, 2), binary=True)
    x_train = vec.fit_transform(d["train"][0])
    y = d["train"][1]
    p = np.asarray(x_train[y == 1].sum(0)).ravel() + 1.0
    q = np.asarray(x_train[y == 0].sum(0)).ravel() + 1.0
    r = np.log((p / p.sum()) / (q / q.sum()))
    x_train = x_train.multiply(r).tocsr()
    x_val = vec.transform(d["val"][0]).multiply(r).tocsr()
    best = max(
        (
            (accuracy(m.predict_proba(x_val)[:, 1], d["val"][1]), c, m)
            for c in C_GRID
            for m in [LogisticRegression(C=c, max_iter=2000).fit(x_train, y)]
        ),
        key=lambda t: t[0],
    )
    val_acc, c, model = best
    seconds = time.perf_counter() - start

    def predict(texts):
        return model.predict_proba(vec.transform(texts).multiply(r).tocsr())[:, 1]

    return {
        "name": "NBSVM-bi (scikit-learn)",
        "C": c,
        "val": val_acc,
        "train_seconds": seconds,
    }, predict


# -- critic ----------------------------------------------------------------------------------
def train_family(family: str, d, work: Path):
    """(report, model file, tokenizer json): the family trained on critic's features."""
    import keras

    from critic.kernels import Ngrams, Tokenizer
    from critic.orchestrator.zoo import ModelSpec, build_model, nb_ratio

    recipe = RECIPES[family]
    f = recipe["features"]
    start = time.perf_counter()
    tok = Tokenizer(num_words=NUM_WORDS, oov_token="<OOV>")
    tok.fit_on_texts(d["train"][0])
    if f["ngrams"] > 1:
        tok.ngrams = Ngrams.fit(
            tok,
            d["train"][0],
            f["ngrams"],
            max_ngrams=f["max_ngrams"],
            min_count=f["min_count"],
            distinct=f["distinct"],
        )
    elif f["distinct"]:
        tok.ngrams = Ngrams.fit(tok, d["train"][0], 1, distinct=True)
    maxlen = MAXLEN * f["ngrams"]
    x = {s: tok.encode(d[s][0], maxlen=maxlen) for s in ("train", "val")}
    features_seconds = time.perf_counter() - start
    parity = feature_parity(tok, d["test"][0])
    size = tok.ngrams.size if tok.ngrams else NUM_WORDS
    spec = ModelSpec.from_dict(
        {"family": family, "num_words": size, "maxlen": maxlen, **recipe["model"]}
    )
    ratios = nb_ratio(x["train"], d["train"][1], size) if family == "nbsvm" else None
    model = build_model(spec, ratios=ratios)
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=1, restore_best_weights=True, mode="max"
    )
    history = model.fit(
        x["train"],
        d["train"][1],
        validation_data=(x["val"], d["val"][1]),
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        callbacks=[stop],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    val = [round(float(v), 4) for v in history.history["val_accuracy"]]
    path = work / f"{family}.keras"
    model.save(path)
    tokenizer_json = tok.to_json()
    doc = json.loads(tokenizer_json)
    doc["encode"] = {"padding": "pre", "truncating": "pre"}
    report = {
        "name": f"critic {family}",
        "features": f,
        "model": recipe["model"],
        "ids": size,
        "maxlen": maxlen,
        "val_by_epoch": val,
        "epoch": int(np.argmax(val)) + 1,
        "val": max(val),
        "features_seconds": round(features_seconds, 1),
        "feature_parity": parity,
        "train_seconds": round(seconds, 1),
    }
    return report, path, json.dumps(doc)


def feature_parity(tok, texts: list[str]) -> dict:
    """The kernel's ids (words, n-grams, distinct) against critic.kernels.ngrams.reference
    applied to the word ids, on every text."""
    from critic.kernels.ngrams import reference

    got = tok.texts_to_sequences(texts)
    saved, tok.ngrams = tok.ngrams, None
    words = tok.texts_to_sequences(texts)
    tok.ngrams = saved
    if saved is None:
        return {"rows": len(texts), "mismatched_rows": 0, "ngrams": False}
    add = reference(saved)
    bad = sum(g != add(w) for g, w in zip(got, words, strict=True))
    return {"rows": len(texts), "mismatched_rows": int(bad), "ngrams": True}


def export(path: Path, tokenizer_json: str, out: Path):
    from critic.export import ExportSource, export_bundle

    report = export_bundle(ExportSource(path, tokenizer_json), out, log=lambda *a: None)
    return report.meta["parity"]


def _cell(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def score_bundle(bundle, d) -> tuple[dict, dict]:
    """A bundle's accuracy (IMDB test, UCI sentences) and its probabilities, and its
    Runtime at 1 and 2 threads (warmed up) for the timed phase."""
    import critic

    runtimes = {}
    for threads in ("1", "2"):
        runtimes[threads] = critic.Runtime(bundle, threads=int(threads))
        runtimes[threads].predict(d["test"][0][:256])  # warm-up
    p_test, p_uci = runtimes["2"].predict(d["test"][0]), runtimes["2"].predict(d["uci"][0])
    row = {
        "test": accuracy(p_test, d["test"][1]),
        "uci": by_source(p_uci, d["uci"][1], d["uci_source"]),
        "p_test": p_test,
        "p_uci": p_uci,
    }
    return row, {threads: rt.predict for threads, rt in runtimes.items()}


def named_bundles(named: list[str]):
    """(bundle, its result row) for each ``--bundle NAME=PATH``."""
    import critic

    for entry in named:
        name, _, path = entry.partition("=")
        bundle = critic.load_bundle(path)
        yield bundle, {"name": f"critic bundle {name} ({bundle.meta['model']['family']})"}


# -- the rating task (k = 8 classes) ---------------------------------------------------------
RATING_C_GRID = (1.0, 4.0, 16.0)
FASTTEXT_EPOCHS = (5, 10, 20, 40)


def load_ratings(data: Path):
    """IMDB train (split 80/20 as critic splits it) and test with the rating class index."""
    from critic.data.datasets import IMDB_RATINGS, stratified_split

    index = {int(r): i for i, r in enumerate(IMDB_RATINGS)}

    def table(name):
        t = pq.read_table(data / "imdb" / f"{name}.parquet", columns=["text", "rating"])
        ratings = t.column("rating").to_pylist()
        return t.column("text").to_pylist(), np.array([index[r] for r in ratings], np.int64)

    texts, labels = table("train")
    tr, va = stratified_split(labels, 0.2, 13)
    return {
        "train": ([texts[i] for i in tr], labels[tr]),
        "val": ([texts[i] for i in va], labels[va]),
        "all": (texts, labels),
        "test": table("test"),
        "labels": IMDB_RATINGS,
    }


def rating_metrics(predicted: np.ndarray, d) -> dict:
    from critic.classes import classification_report

    report = classification_report(d["test"][1], predicted, d["labels"])
    return {k: report[k] for k in ("accuracy", "macro_f1", "mean_absolute_error")}


def rating_tfidf_lr(d):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train, x_val = vec.fit_transform(d["train"][0]), vec.transform(d["val"][0])
    scores = {}
    for c in RATING_C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, d["train"][1])
        scores[c] = float((model.predict(x_val) == d["val"][1]).mean())
    c = max(scores, key=scores.get)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    model = LogisticRegression(C=c, max_iter=2000).fit(vec.fit_transform(d["all"][0]), d["all"][1])
    seconds = time.perf_counter() - start

    def predict(texts):
        return model.predict(vec.transform(texts))

    row = {"name": "TF-IDF (1,2) + LR", "C": c, "val_by_C": scores, "val": scores[c]}
    return {**row, "train_seconds": round(seconds, 1)}, predict


def rating_fasttext(d, work: Path):
    try:
        import fasttext
    except ImportError:
        return None, None
    rng = np.random.default_rng(13)

    def write(split, name):
        texts, labels = split
        order = rng.permutation(len(texts))  # fastText learns in file order: shuffle
        path = work / f"{name}.txt"
        with open(path, "w", encoding="utf-8") as fh:
            for i in order:
                text = " ".join(texts[i].replace("<br />", " ").split())
                fh.write(f"__label__{d['labels'][labels[i]]} {text}\n")
        return str(path)

    start = time.perf_counter()
    train = write(d["train"], "train")
    scores = {}
    for epochs in FASTTEXT_EPOCHS:
        model = fasttext.train_supervised(train, wordNgrams=2, epoch=epochs, verbose=0, thread=2)
        scores[epochs] = float((_fasttext_predict(model, d["val"][0], d) == d["val"][1]).mean())
    epochs = max(scores, key=scores.get)
    model = fasttext.train_supervised(
        write(d["all"], "all"), wordNgrams=2, epoch=epochs, verbose=0, thread=2
    )
    seconds = time.perf_counter() - start
    row = {"name": "fastText supervised (wordNgrams 2)", "epochs": epochs, "val_by_epochs": scores}
    row |= {"val": scores[epochs], "train_seconds": round(seconds, 1)}
    return row, lambda texts: _fasttext_predict(model, texts, d)


def _fasttext_predict(model, texts, d) -> np.ndarray:
    index = {f"__label__{name}": i for i, name in enumerate(d["labels"])}
    lines = [" ".join(t.replace("<br />", " ").split()) for t in texts]
    labels, _ = model.predict(lines)
    return np.array([index[x[0]] for x in labels], dtype=np.int64)


def rating_main(args) -> None:
    import critic

    d = load_ratings(args.data)
    texts = d["test"][0]
    rows, timed = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for make in (rating_tfidf_lr, lambda d: rating_fasttext(d, Path(tmp))):
            row, predict = make(d)
            if row is None:
                print("fastText: not installed (pip install fasttext-numpy2); left out")
                continue
            row.update(rating_metrics(predict(texts), d))
            timed[row["name"], "1"] = predict
            rows.append(row)
            print(json.dumps(row), flush=True)
        for bundle, row in named_bundles(args.bundle):
            for threads in ("1", "2"):
                rt = critic.Runtime(bundle, threads=int(threads))
                rt.predict(texts[:256])  # warm-up
                timed[row["name"], threads] = rt.predict
            p = timed[row["name"], "2"](texts)
            row.update(rating_metrics(p.argmax(axis=1), d))
            rows.append(row)
            print(json.dumps(row), flush=True)
        speeds = interleaved_speeds(timed, texts, args.repeat)
    peer = speeds[rows[0]["name"], "1"]
    for row in rows:
        row["texts_per_s"] = {t: v for (name, t), v in speeds.items() if name == row["name"]}
        row["speed_vs_tfidf_lr"] = {t: round(v / peer, 1) for t, v in row["texts_per_s"].items()}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "task": "IMDB star ratings 1-4, 7-10 (8 classes)",
        "split": "IMDB train 20,000 / validation 5,000 (stratified, seed 13) to choose, then "
        "refit on all 25,000; test 25,000",
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_rating.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| model | val acc | test acc | macro-F1 | MAE (stars) | train s | texts/s 1 thr | 2 thr "
        "| x peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sp = r["texts_per_s"]
        lines.append(
            f"| {r['name']} | {_cell(r.get('val'), '.2%')} | **{r['accuracy']:.2%}** | "
            f"{r['macro_f1']:.4f} | {r['mean_absolute_error']:.3f} | "
            f"{_cell(r.get('train_seconds'), '.0f')} | {_cell(sp.get('1'), ',.0f')} | "
            f"{_cell(sp.get('2'), ',.0f')} | {max(r['speed_vs_tfidf_lr'].values())} |"
        )
    (args.out / "accuracy_rating.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--families", default=",".join(RECIPES), help="'' for the peers only")
    parser.add_argument(
        "--sample", action="store_true", help="the shipped 1,000-review sample, not IMDB"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep-bundles", type=Path, help="save each family's bundle here")
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also score and time this exported bundle (repeatable)",
    )
    parser.add_argument(
        "--task",
        choices=("sentiment", "rating"),
        default="sentiment",
        help="sentiment (neg/pos) or rating (the 8 star ratings as classes)",
    )
    args = parser.parse_args()
    if args.task == "rating":
        rating_main(args)
        return

    import critic

    d = load(args.data, args.sample)
    test_texts, y_test = d["test"]
    uci_texts, y_uci = d["uci"]
    rows, probs = [], {}
    speed_texts = test_texts

    timed = {}  # (row name, threads) -> predict, timed together at the end
    for make in (peer_tfidf_lr, peer_nbsvm):
        row, predict = make(d)
        p = predict(test_texts)
        row["test"] = accuracy(p, y_test)
        row["uci"] = by_source(predict(uci_texts), y_uci, d["uci_source"])
        timed[row["name"], "1"] = predict
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items()}), flush=True)

    uci_probs = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for family in filter(None, args.families.split(",")):
            row, model_path, tok_json = train_family(family, d, work)
            bundle_dir = (args.keep_bundles or work) / f"bundle-{family}"
            row["parity"] = export(model_path, tok_json, bundle_dir)
            scored, predicts = score_bundle(critic.load_bundle(bundle_dir), d)
            row.update(scored)
            timed.update({(row["name"], t): predict for t, predict in predicts.items()})
            probs[family], uci_probs[family] = row.pop("p_test"), row.pop("p_uci")
            rows.append(row)
            print(json.dumps(row), flush=True)
        for bundle, row in named_bundles(args.bundle):
            scored, predicts = score_bundle(bundle, d)
            row.update(scored)
            timed.update({(row["name"], t): predict for t, predict in predicts.items()})
            del row["p_test"], row["p_uci"]
            rows.append(row)
            print(json.dumps(row), flush=True)
        speeds = interleaved_speeds(timed, speed_texts, args.repeat)
    for row in rows:
        mine = {t: v for (name, t), v in speeds.items() if name == row["name"]}
        if mine:
            row["texts_per_s"] = mine
    if len(probs) > 1:
        mean = np.mean(list(probs.values()), axis=0)
        rows.append(
            {
                "name": "critic ensemble (mean of " + ", ".join(probs) + ")",
                "test": accuracy(mean, y_test),
                "uci": by_source(np.mean(list(uci_probs.values()), axis=0), y_uci, d["uci_source"]),
            }
        )
    peer = rows[0]
    for row in rows:
        if "texts_per_s" in row:
            row["speed_vs_tfidf_lr"] = {
                t: round(v / peer["texts_per_s"]["1"], 1) for t, v in row["texts_per_s"].items()
            }
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "split": (
            "shipped sample: train 800 / validation 200 (stratified, seed 13); test 1,000"
            if args.sample
            else "IMDB train 20,000 / validation 5,000 (stratified, seed 13); test 25,000"
        ),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "accuracy_sample" if args.sample else "accuracy"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| model | val | IMDB test | UCI sentences (amazon / yelp / imdb) | train s "
        "| texts/s 1 thr | 2 thr | x peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        u = r["uci"]
        sp = r.get("texts_per_s", {})
        lines.append(
            f"| {r['name']} | {_cell(r.get('val'), '.2%')} | **{r['test']:.2%}** | "
            f"{u['all']:.1%} ({u.get('amazon_cells', 0):.1%} / {u.get('yelp', 0):.1%} / "
            f"{u.get('imdb', 0):.1%}) | {_cell(r.get('train_seconds'), '.0f')} | "
            f"{_cell(sp.get('1'), ',.0f')} | {_cell(sp.get('2'), ',.0f')} | "
            f"{r.get('speed_vs_tfidf_lr', {}).get('2', '')} |"
        )
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
