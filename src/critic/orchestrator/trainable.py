"""The Ray Tune trainable: one Keras model, trained epoch by epoch, reported to Tune."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .prepare import setting_key, trial_setting


def _configure_tensorflow() -> None:
    """Memory growth on every GPU, so fractional-GPU trials can share a device."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def train_trial(config: dict, arrays: dict[str, dict]) -> None:
    """Train ``config["model"]`` on the arrays prepared for ``config["tokenizer"]``
    (``arrays``: :func:`~.prepare.trial_arrays`, from Ray's object store on any node)."""
    _configure_tensorflow()
    data = arrays[setting_key(trial_setting(config))]
    spec = _spec(config, data)
    model, start_epoch = _initial_model(spec, data)
    model.fit(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=int(config["epochs"]),
        initial_epoch=start_epoch,
        batch_size=int(config["batch_size"]),
        callbacks=[_report_to_tune()],
        verbose=0,
    )


def _spec(config: dict, data: dict):
    """The trial's ModelSpec, sized by the ids its tokenizer setting produces and the classes
    of its data."""
    from .zoo import ModelSpec

    maxlen = trial_setting(config)["maxlen"]
    sizes = {"num_words": data["vocab_size"], "maxlen": maxlen, "classes": len(data["labels"])}
    return ModelSpec.from_dict({**config["model"], **sizes})


def _initial_model(spec, data: dict):
    """(model, first epoch): a retried or resumed trial continues from its checkpoint, a new
    one starts from scratch (with GloVe vectors when the spec names them, naive-Bayes ratios
    for nbsvm)."""
    import keras
    from ray import tune

    import critic.keras_layers  # noqa: F401  (registers the layers checkpoints may hold)

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt:
            model = keras.models.load_model(Path(ckpt) / "model.keras", safe_mode=True)
            start_epoch = int((Path(ckpt) / "epoch").read_text())
        # PBT continues a better trial's checkpoint with a mutated config: the learning rate
        # is the one mutation a trained model can take on.
        model.optimizer.learning_rate.assign(spec.learning_rate)
        return model, start_epoch
    return _fresh_model(spec, data, data["x_train"], data["y_train"]), 0


def _fresh_model(spec, data: dict, x: np.ndarray, y: np.ndarray):
    """A new model for ``spec`` (GloVe vectors when named, naive-Bayes ratios of ``x`` for
    nbsvm)."""
    from .zoo import build_model, load_glove, nb_ratio

    matrix = None
    if spec.glove_path:
        from critic.kernels import Tokenizer

        tok = Tokenizer.from_json(data["tokenizer"])
        matrix, _ = load_glove(spec.glove_path, tok.word_index, spec.num_words, spec.embedding_dim)
    ratios = (
        nb_ratio(x, y, spec.num_words, classes=spec.classes) if spec.family == "nbsvm" else None
    )
    return build_model(spec, matrix, ratios)


def refit_model(config: dict, data: dict, epochs: int) -> bytes:
    """A trial's configuration trained from scratch on train + validation for ``epochs``
    epochs (the epoch count the validation split selected); returns its model.keras bytes."""
    _configure_tensorflow()
    spec = _spec(config, data)
    x = np.concatenate([data["x_train"], data["x_val"]])
    y = np.concatenate([data["y_train"], data["y_val"]])
    model = _fresh_model(spec, data, x, y)
    model.fit(x, y, epochs=int(epochs), batch_size=int(config["batch_size"]), verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.keras")
        return (Path(tmp) / "model.keras").read_bytes()


def _report_to_tune():
    """A Keras callback reporting each epoch's metrics and a model.keras checkpoint to Tune."""
    import keras
    from ray import tune

    class ReportToTune(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            with tempfile.TemporaryDirectory() as tmp:
                self.model.save(Path(tmp) / "model.keras")
                (Path(tmp) / "epoch").write_text(str(epoch + 1))
                metrics = {"epoch": epoch + 1}
                for name in ("accuracy", "loss", "val_accuracy", "val_loss"):
                    metrics[name] = float(logs.get(name, np.nan))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    return ReportToTune()


def trial_resources(cfg) -> dict[str, float]:
    """The Ray resources of one trial (or refit): the config's, on CPU when the cluster has
    no GPU."""
    import ray

    cpu, gpu = float(cfg.resources.cpu), float(cfg.resources.gpu)
    if gpu > 0 and ray.cluster_resources().get("GPU", 0) == 0:
        print("critic tune: no GPU in this Ray cluster; trials run on CPU")
        gpu = 0.0
    return {"cpu": cpu, "gpu": gpu}
