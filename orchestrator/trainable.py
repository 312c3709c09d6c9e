"""The Ray Tune trainable: one Keras model, trained epoch by epoch, reported to Tune."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .prepare import setting_key


def _configure_tensorflow() -> None:
    """Memory growth on every GPU, so fractional-GPU trials can share a device."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def train_trial(config: dict) -> None:
    """Train ``config["model"]`` on the arrays prepared for ``config["tokenizer"]``."""
    _configure_tensorflow()
    import keras
    from ray import tune

    from .zoo import ModelSpec, build_model, load_glove

    marker = config.get("_fail_once_marker")
    if marker and not Path(marker).exists():  # test-only switch: fail the first attempt
        Path(marker).write_text("failed once")
        raise RuntimeError("injected failure (fail-once test switch)")

    setting = config["tokenizer"]
    folder = Path(config["_data"][setting_key(setting)])
    x = {s: np.load(folder / f"x_{s}.npy", mmap_mode="r") for s in ("train", "val")}
    y = {s: np.load(folder / f"y_{s}.npy") for s in ("train", "val")}
    spec = ModelSpec.from_dict(
        {**config["model"], "num_words": setting["num_words"], "maxlen": setting["maxlen"]}
    )
    start_epoch = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a retried or resumed trial continues where it stopped
        with checkpoint.as_directory() as ckpt:
            model = keras.models.load_model(Path(ckpt) / "model.keras", safe_mode=True)
            start_epoch = int((Path(ckpt) / "epoch").read_text())
        # PBT continues a better trial's checkpoint with a mutated config: the learning rate
        # is the one mutation a trained model can take on.
        model.optimizer.learning_rate.assign(spec.learning_rate)
    else:
        matrix = None
        if spec.glove_path:
            from critic.kernels import Tokenizer

            tok = Tokenizer.from_json((folder / "tokenizer.json").read_text(encoding="utf-8"))
            matrix, _ = load_glove(
                spec.glove_path, tok.word_index, spec.num_words, spec.embedding_dim
            )
        model = build_model(spec, matrix)

    class ReportToTune(keras.callbacks.Callback):
        """Per-epoch metrics and a model.keras checkpoint, through ray.tune.report."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            with tempfile.TemporaryDirectory() as tmp:
                self.model.save(Path(tmp) / "model.keras")
                (Path(tmp) / "epoch").write_text(str(epoch + 1))
                tune.report(
                    {
                        "epoch": epoch + 1,
                        "accuracy": float(logs.get("accuracy", np.nan)),
                        "loss": float(logs.get("loss", np.nan)),
                        "val_accuracy": float(logs.get("val_accuracy", np.nan)),
                        "val_loss": float(logs.get("val_loss", np.nan)),
                    },
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )

    model.fit(
        x["train"],
        y["train"],
        validation_data=(x["val"], y["val"]),
        epochs=int(config["epochs"]),
        initial_epoch=start_epoch,
        batch_size=int(config["batch_size"]),
        callbacks=[ReportToTune()],
        verbose=0,
    )
