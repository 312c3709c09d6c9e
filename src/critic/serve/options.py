"""``critic serve``'s settings, one place for both engines and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from critic.bundle import BASE_VARIANT

from .providers import DEFAULT_DEVICE


@dataclass
class ServeOptions:
    replicas: int = 1
    max_batch_size: int = 32  # requests merged into one inference call
    batch_wait_ms: float = 0.0  # wait for more requests before a call (0: none)
    max_texts: int = 256  # per request
    max_chars: int = 100_000  # per text
    max_ongoing_requests: int = 64  # per replica
    max_queued_requests: int = 256  # admitted beyond what the replicas run at once
    max_body_bytes: int = 4 << 20  # per request body
    body_timeout_s: float = 10.0  # for a request body to arrive, after its headers
    header_timeout_s: float = 10.0  # for a request's headers to arrive
    max_buffered_bytes: int = 256 << 20  # request bodies held by the proxy at once
    threads: int | None = None  # inference threads per replica (default: cores / replicas)
    drain_timeout_s: float = 30.0  # on SIGTERM or Ctrl-C: to answer the requests under way
    variant: str = BASE_VARIANT
    device: str = DEFAULT_DEVICE

    def validate(self) -> None:
        for name in ("replicas", "max_batch_size", "max_texts", "max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.max_ongoing_requests < 1 or self.max_queued_requests < 0:
            raise ValueError("--max-ongoing must be >= 1 and --max-queued >= 0")
        if self.batch_wait_ms < 0:
            raise ValueError("--batch-wait-ms must be >= 0")
        if self.max_body_bytes < 1 or self.body_timeout_s <= 0 or self.header_timeout_s <= 0:
            raise ValueError(
                "--max-body-bytes must be >= 1, --body-timeout and --header-timeout > 0"
            )
        if self.drain_timeout_s <= 0:
            raise ValueError("--drain-timeout must be > 0")

    def guard_settings(self, replicas: int) -> dict[str, Any]:
        """The admission settings (:class:`~critic.serve.guard.RequestGuard`) in front of
        ``replicas`` copies of the model."""
        return {
            "capacity": replicas * self.max_ongoing_requests,
            "max_waiting": self.max_queued_requests,
            "max_body_bytes": self.max_body_bytes,
            "body_timeout_s": self.body_timeout_s,
            "max_buffered_bytes": max(self.max_buffered_bytes, self.max_body_bytes),
        }


def model_summary(bundle, source: str) -> dict[str, Any]:
    """What GET /model shows: the bundle's metadata without the file table."""
    meta = {k: v for k, v in bundle.meta.items() if k not in ("files", "manifest_sha256")}
    return {"path": source, "manifest_sha256": bundle.meta["manifest_sha256"], **meta}
