"""onnxruntime sessions: CUDA when available and asked for, else CPU tuned for throughput."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("critic.runtime")
_said: set[str] = set()
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"  # CUDA when onnxruntime-gpu has a GPU, else the CPU
ORT_DEFAULT_SEVERITY = 2  # onnxruntime's own default for its process-wide logger: warnings


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)


def providers_for(device: str) -> list[str]:
    """Execution providers for ``device`` ('auto', 'cpu' or 'cuda'); CUDA falls back to CPU
    (said once per process) when this onnxruntime or machine has no usable CUDA."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        _say_once(
            "critic: CUDA was asked for but onnxruntime has no CUDAExecutionProvider here "
            "(install critic[gpu] on a machine with a GPU); running on CPU"
        )
    return ["CPUExecutionProvider"]


def session_for(model: bytes | Path, device: str, threads: int):
    """An InferenceSession (from a model's bytes, or its file) and the device it actually
    runs on."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Don't leave worker threads spinning on a core between requests.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    wanted = providers_for(device)
    source = model if isinstance(model, bytes) else str(model)
    trying_cuda = "CUDAExecutionProvider" in wanted
    if trying_cuda:
        # A CUDA build on a machine without CUDA's libraries logs a red ERROR block (and a
        # warning) through onnxruntime's process-wide logger while it tries the provider;
        # critic says it in one line below instead.
        ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(source, opts, providers=wanted)
    finally:
        if trying_cuda:
            ort.set_default_logger_severity(ORT_DEFAULT_SEVERITY)
    used = session.get_providers()
    if "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in used:
        _say_once("critic: onnxruntime could not start CUDA; running on CPU")
    return session, "cuda" if "CUDAExecutionProvider" in used else "cpu"
