"""The bundle's README.md: a model card written from its metadata."""

from __future__ import annotations

from typing import Any

from critic.classes import output_width

IDS = {
    "keras_tokenizer": "Keras Tokenizer ids",
    "keras_imdb_index": "the ids of Keras' `imdb.npz` (`keras.datasets.imdb`)",
}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def model_card(meta: dict[str, Any]) -> str:
    model, parity, trial = meta["model"], meta["parity"], meta.get("trial", {})
    dataset = meta.get("dataset") or {}
    params = {**trial.get("model", {}), **trial.get("tokenizer", {})}
    labels = meta["labels"]
    width = output_width(len(labels))
    lines = [
        f"# critic review model: {model['family']}",
        "",
        _purpose(meta),
        "",
        "```python",
        "import critic",
        'rt = critic.Runtime.load("path/to/this/bundle")',
        'rt.predict(["A wonderful film."])',
        "```",
        "",
        "## Model",
        "",
        f"- Family `{model['family']}`; input `{model['input']}` int32 [batch, {model['maxlen']}]"
        f" ({IDS.get(model.get('ids'), IDS['keras_tokenizer'])}, padding/truncation as in "
        "`tokenizer.json`), output "
        f"`{model['output']}` float32 [batch, {width}].",
        f"- ONNX opset {model['opset']}; recurrence: {model['recurrent']}"
        + (f" ({', '.join(model['recurrent_ops'])})" if model["recurrent_ops"] else "")
        + ".",
    ]
    if params:
        lines.append(
            "- Hyperparameters: " + ", ".join(f"`{k}={v}`" for k, v in sorted(params.items()))
        )
    if trial.get("trial"):
        lines.append(
            f"- Sweep `{trial.get('run')}`, trial `{trial['trial']}`, rank {trial.get('rank')}."
        )
    lines += ["", "## Data", ""]
    if dataset:
        desc = ", ".join(f"{k}: `{v}`" for k, v in sorted(dataset.items()))
        lines.append(
            f"Trained on the sweep's dataset ({desc}); the validation split is a "
            "seeded stratified part of the training data, the test split was used "
            "once, after selection."
        )
    else:
        lines.append("Exported from a single Keras checkpoint; its training data is not recorded.")
    lines += [
        "",
        "## Metrics",
        "",
        "| split | ONNX accuracy | Keras accuracy |",
        "|---|---|---|",
    ]
    keras_metrics = meta.get("keras_metrics", {})
    for split in ("val", "test"):
        lines.append(
            f"| {split} | {_pct(meta['metrics'].get(f'{split}_accuracy'))} | "
            f"{_pct(keras_metrics.get(f'{split}_accuracy'))} |"
        )
    lines += [
        "",
        f"Parity with Keras on {parity['rows']} sequences ({parity['source']}): max |diff| "
        f"{parity['max_abs_diff']:.3g} (allowed {parity['tolerance']:g}), "
        f"{parity['label_flips']} label flips.",
    ]
    if "window" in meta:
        w = meta["window"]
        lines.append(
            f"Padding-skipping window model `{w['file']}` (same LSTM, started from the state the "
            f"padding would have produced): max |diff| vs Keras {w['parity']['max_abs_diff']:.3g}, "
            f"{w['parity']['label_flips']} label flips; the runtime uses it by default."
        )
    if "int8" in meta["models"]:
        q = meta["models"]["int8"]
        lines.append(
            f"int8 variant `{q['file']}`: max |diff| vs fp32 {q['max_abs_diff_vs_fp32']:.3g}, "
            f"{q['label_flips_vs_fp32']} label flips, validation accuracy "
            f"{_pct(q.get('val_accuracy'))}."
        )
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- Intended for English review-style text (movie or product reviews) resembling the "
        "training data; scores are not calibrated probabilities outside that domain.",
        f"- {_truncation(model)}; words outside the tokenizer's vocabulary are ignored or "
        "mapped to its OOV id.",
        "- Sarcasm, mixed or neutral opinions, other languages and very short texts are known "
        "weak spots of bag-of-words-plus-RNN classifiers; check accuracy on your own data.",
        "- Do not use it for decisions about people without human review.",
        "",
        "Files and their sha256 are listed in `bundle.json`; `critic.bundle.load_bundle` "
        "refuses a bundle whose files do not match.",
        "",
    ]
    return "\n".join(lines)


def _purpose(meta: dict[str, Any]) -> str:
    labels = meta["labels"]
    if len(labels) == 2:
        return (
            f"Binary review classifier exported by critic on {meta['created']}. It reads raw "
            f"review text and returns P({labels[1]}); scores at or above {meta['threshold']} are "
            f"labelled `{labels[1]}`, below `{labels[0]}`."
        )
    names = ", ".join(f"`{x}`" for x in labels)
    return (
        f"Review classifier with {len(labels)} classes exported by critic on {meta['created']}. "
        f"It reads raw review text and returns the probability of each class, in this order: "
        f"{names}; the most probable class is the label."
    )


def _truncation(model: dict[str, Any]) -> str:
    """Which tokens of a long review the model reads (Keras truncates 'pre' by default: the
    first tokens are dropped and the last ``maxlen`` kept)."""
    truncating = model.get("truncating", "pre")
    kept = "last" if truncating == "pre" else "first"
    maxlen = model["maxlen"]
    return (
        f"Only the {kept} {maxlen} tokens of a longer review are read (truncating '{truncating}')"
    )
