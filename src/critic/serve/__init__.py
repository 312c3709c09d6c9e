"""Serving: the onnxruntime Runtime, batch scoring and Ray Serve (no TensorFlow needed)."""

from .runtime import Runtime

__all__ = ["Runtime"]
