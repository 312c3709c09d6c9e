"""Build a verified bundle from an ExportSource: convert, verify, (quantize), write, seal."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from critic.bundle import BUNDLE_FILE, FORMAT, FORMAT_VERSION, file_entry, seal_manifest
from critic.classes import output_width, predicted_index

from .card import model_card
from .convert import INPUT, OPSET, OUTPUT, describe_graph, model_maxlen, reads_a_bag, to_onnx
from .quantize import QuantizeSkipped, quantize_int8
from .sources import ExportSource, SourceError
from .verify import (
    BATCH,
    TOLERANCE,
    ParityError,
    accuracy,
    check_parity,
    keras_predict,
    onnx_predict,
    sequences_per_second,
    session,
)

VERIFY_ROWS = 1000
THRESHOLD = 0.5


@dataclass
class ExportReport:
    """What one export produced (also in the bundle's bundle.json)."""

    path: Path
    meta: dict[str, Any]

    def summary(self) -> str:
        m, fp32 = self.meta, self.meta["models"]["fp32"]
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in m["metrics"].items() if v is not None)
        line = (
            f"{self.path}: {m['model'].get('family', 'model')} (recurrence: "
            f"{m['model']['recurrent']}), {fp32['bytes'] / 1e6:.2f} MB, parity max|diff| "
            f"{m['parity']['max_abs_diff']:.2g} on {m['parity']['rows']} rows, "
            f"{fp32['sequences_per_second']:.0f} seq/s"
        )
        if metrics:
            line += f"; {metrics}"
        if "window" in m:
            line += f"; window model {m['window']['sequences_per_second']:.0f} seq/s"
        if "int8" in m["models"]:
            q = m["models"]["int8"]
            line += (
                f"; int8 {q['bytes'] / 1e6:.2f} MB, {q['sequences_per_second']:.0f} seq/s, "
                f"max|diff| vs fp32 {q['max_abs_diff_vs_fp32']:.3g}"
            )
        return line


@dataclass
class Checked:
    """A converted model and the evidence that it predicts as Keras does."""

    model: Any  # the Keras model
    maxlen: int
    tokenizer_doc: dict[str, Any]
    graph: dict[str, Any]
    model_bytes: bytes
    session: Any
    x_verify: np.ndarray
    verify_source: str
    p_keras: np.ndarray
    parity: Any
    metrics: dict[str, float | None]


def export_bundle(
    source: ExportSource,
    out: str | Path,
    *,
    quantize: str | None = None,
    verify_rows: int = VERIFY_ROWS,
    opset: int = OPSET,
    tolerance: float = TOLERANCE,
    overwrite: bool = False,
    log=print,
) -> ExportReport:
    """Convert ``source`` to ONNX, verify it against Keras, and write the bundle at ``out``.

    The bundle appears atomically (built in a temporary sibling folder, then renamed): a failed
    export (ParityError, ...) leaves nothing behind.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    if quantize not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantize!r}; only 'int8' is supported")
    start = time.perf_counter()
    checked = convert_and_verify(source, opset, verify_rows, tolerance)
    seconds = time.perf_counter() - start
    tmp = _staging_folder(out)
    try:
        meta = _write_files(tmp, source, checked, quantize, opset, tolerance, log)
        meta["export_seconds"] = round(seconds, 2)
        (tmp / "README.md").write_text(model_card(meta), encoding="utf-8")
        meta["files"] = {p.name: file_entry(p) for p in sorted(tmp.iterdir())}
        (tmp / BUNDLE_FILE).write_bytes(seal_manifest(meta))
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportReport(out, meta)


def convert_and_verify(
    source: ExportSource, opset: int, verify_rows: int, tolerance: float
) -> Checked:
    """Load the checkpoint, convert it with tf2onnx and compare onnxruntime with Keras on
    real sequences (a ParityError when they differ)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import critic.keras_layers  # noqa: F401  (registers the layers a checkpoint may hold)

    model = keras.models.load_model(source.checkpoint, safe_mode=True, compile=False)
    maxlen = model_maxlen(model)
    _check_width(model, source)
    tokenizer_doc = _tokenizer_doc(source.tokenizer_json, maxlen)
    proto = to_onnx(model, opset=opset)
    model_bytes = proto.SerializeToString()
    sess = session(model_bytes)
    x_verify, verify_source = _verification_rows(source, tokenizer_doc, maxlen, verify_rows)
    p_keras = keras_predict(model, x_verify)
    p_onnx = onnx_predict(sess, x_verify)
    parity = check_parity(p_keras, p_onnx, verify_source, THRESHOLD, tolerance)
    return Checked(
        model,
        maxlen,
        tokenizer_doc,
        describe_graph(proto),
        model_bytes,
        sess,
        x_verify,
        verify_source,
        p_keras,
        parity,
        _onnx_metrics(sess, source.data, refit=bool(source.trial.get("refit"))),
    )


def _check_width(model, source: ExportSource) -> None:
    """The model's outputs match the labels it ships with: 1 for two labels, k for k."""
    k = len(source.labels)
    width, want = int(model.outputs[0].shape[-1]), output_width(k)
    if width != want:
        raise SourceError(
            f"{source.checkpoint}: the model has {width} output(s), but {k} labels came with "
            f"it ({list(source.labels)}; expected {want} output{'s' if want > 1 else ''})"
        )


def _staging_folder(out: Path) -> Path:
    """An empty sibling of ``out`` to build the bundle in (renamed into place at the end)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a bundle is an ordinary folder
    return tmp


def _write_files(
    tmp: Path,
    source: ExportSource,
    c: Checked,
    quantize: str | None,
    opset: int,
    tolerance: float,
    log,
) -> dict[str, Any]:
    """The model files and tokenizer.json in ``tmp``; returns bundle.json's content so far."""
    (tmp / "model.onnx").write_bytes(c.model_bytes)
    models: dict[str, Any] = {
        "fp32": {
            "file": "model.onnx",
            "bytes": len(c.model_bytes),
            "sequences_per_second": sequences_per_second(c.session, c.x_verify),
        }
    }
    notes = []
    window = _window(c.model, opset, tmp, c.x_verify, c.p_keras, c.verify_source, tolerance, log)
    if isinstance(window, str):
        notes.append(window)
    if quantize == "int8":
        try:
            refit = bool(source.trial.get("refit"))
            models["int8"] = _int8(tmp, c.graph, c.session, c.x_verify, source.data, refit)
        except QuantizeSkipped as e:
            log(f"critic export: {e}")
            notes.append(str(e))
    (tmp / "tokenizer.json").write_text(json.dumps(c.tokenizer_doc), encoding="utf-8")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": list(source.labels),
        "threshold": THRESHOLD,
        "model": {
            "input": INPUT,
            "output": OUTPUT,
            "maxlen": c.maxlen,
            "ids": c.tokenizer_doc["encode"]["mode"],
            "truncating": c.tokenizer_doc["encode"]["truncating"],
            "family": source.trial.get("model", {}).get("family") or c.model.name,
            # any row width: the runtime trims each batch's padding before it runs
            "any_length": reads_a_bag(c.model),
            **c.graph,
        },
        "models": models,
        **({"window": window} if isinstance(window, dict) else {}),
        "metrics": c.metrics,
        "keras_metrics": {k: source.trial.get(k) for k in ("val_accuracy", "test_accuracy")},
        "parity": c.parity.to_dict(),
        "trial": source.trial,
        "dataset": source.dataset,
        "notes": notes,
        "versions": _versions(),
    }


def _tokenizer_doc(tokenizer_json: str, maxlen: int) -> dict[str, Any]:
    doc = json.loads(tokenizer_json)
    encode = {"padding": "pre", "truncating": "pre", **doc.get("encode", {})}
    mode = "keras_imdb_index" if doc.get("class_name") == "ImdbIndex" else "keras_tokenizer"
    doc["encode"] = {**encode, "mode": mode, "maxlen": maxlen}
    return doc


def _verification_rows(
    source: ExportSource, tokenizer_doc: dict, maxlen: int, rows: int
) -> tuple[np.ndarray, str]:
    """Up to ``rows`` real sequences (validation first, then test, then train); random ids
    only when no data came with the checkpoint."""
    if source.data is not None:
        parts, names = [], []
        for split in ("val", "test", "train"):
            path = source.data / f"x_{split}.npy"
            have = sum(len(p) for p in parts)
            if have >= rows or not path.is_file():
                continue
            parts.append(np.load(path, mmap_mode="r")[: rows - have])
            names.append(split)
        x = np.concatenate(parts)
        if x.shape[1] != maxlen:
            raise ValueError(f"data has maxlen {x.shape[1]}, the model {maxlen}")
        if len(x) >= rows:
            return x, "+".join(names)
        # A small sweep: top up with random sequences so parity still covers `rows` rows.
        extra = _random_rows(tokenizer_doc, maxlen, rows - len(x))
        return np.concatenate([x, extra]), "+".join([*names, "random ids"])
    return _random_rows(tokenizer_doc, maxlen, rows), "random ids"


def _random_rows(tokenizer_doc: dict, maxlen: int, rows: int) -> np.ndarray:
    """Pre-padded random id sequences of random lengths (ids the tokenizer can emit)."""
    config = tokenizer_doc["config"]
    vocab = len(json.loads(config.get("word_index") or "{}")) + 1
    high = min(int(config.get("num_words") or vocab), vocab)
    if tokenizer_doc.get("ngrams"):  # word ids, then n-gram ids
        from critic.kernels import Ngrams

        high = Ngrams.from_dict(tokenizer_doc["ngrams"]).size
    rng = np.random.default_rng(0)
    x = rng.integers(1, max(high, 2), size=(rows, maxlen), dtype=np.int32)
    lengths = rng.integers(0, maxlen + 1, size=rows)
    x[np.arange(maxlen)[None, :] < (maxlen - lengths)[:, None]] = 0
    return x


def _onnx_metrics(sess, data: Path | None, refit: bool = False) -> dict[str, float | None]:
    """Accuracy of the ONNX model on the run's splits (not on validation rows a refit model
    was trained on)."""
    metrics: dict[str, float | None] = {"val_accuracy": None, "test_accuracy": None}
    for split in ("test",) if refit else ("val", "test"):
        if data is not None and (data / f"x_{split}.npy").is_file():
            p = onnx_predict(sess, np.load(data / f"x_{split}.npy"))
            metrics[f"{split}_accuracy"] = accuracy(p, np.load(data / f"y_{split}.npy"), THRESHOLD)
    return metrics


def _window(model, opset: int, folder: Path, x, p_keras, source: str, tolerance: float, log):
    """model.window.onnx (the padding-skipping path) when the model qualifies and the
    runtime's windowed inference matches Keras: its record, a note saying why it was left
    out, or None when the model does not qualify."""
    from critic.bundle.inference import Window, predict_ids

    from .window import window_model, window_to_onnx

    window = window_model(model)
    if window is None:
        return None
    data = window_to_onnx(window, opset).SerializeToString()
    runner = Window(session(data))
    p_window = predict_ids(None, x, BATCH, runner)
    try:
        parity = check_parity(p_keras, p_window, source, THRESHOLD, tolerance, "window model")
    except ParityError as e:
        log(f"critic export: window model left out: {e}")
        return f"window model left out: {e}"
    (folder / "model.window.onnx").write_bytes(data)
    return {
        "file": "model.window.onnx",
        "bytes": len(data),
        "parity": parity.to_dict(),
        "sequences_per_second": sequences_per_second(None, x, window=runner),
    }


def _int8(
    folder: Path, graph: dict, fp32, x: np.ndarray, data: Path | None, refit: bool
) -> dict[str, Any]:
    quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", graph)
    q = session((folder / "model.int8.onnx").read_bytes())
    p_q, p_fp32 = onnx_predict(q, x), onnx_predict(fp32, x)
    diff = np.abs(p_q - p_fp32)
    flips = predicted_index(p_q, THRESHOLD) != predicted_index(p_fp32, THRESHOLD)
    info: dict[str, Any] = {
        "file": "model.int8.onnx",
        "bytes": (folder / "model.int8.onnx").stat().st_size,
        "sequences_per_second": sequences_per_second(q, x),
        "max_abs_diff_vs_fp32": float(diff.max(initial=0.0)),
        "label_flips_vs_fp32": int(flips.sum()),
    }
    info.update({k: v for k, v in _onnx_metrics(q, data, refit).items() if v is not None})
    return info


def _replace(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    names = ("critic", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxruntime-gpu")
    for name in (*names, "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
