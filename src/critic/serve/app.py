"""``critic serve``: a bundle behind HTTP on Ray Serve, with dynamic batching.

POST /predict {"texts": [...]} -> {"probabilities": [...], "labels": [...]}
GET  /healthz                  -> {"status": "ok"}
GET  /model                    -> the bundle's metadata

Requests are validated (a non-empty list of strings, at most ``max_texts`` texts of at most
``max_chars`` characters; else 4xx with the reason). Before a request reaches a replica, the
HTTP proxy admits it (:mod:`critic.serve.guard`): its whole body read first
(``max_body_bytes``, ``body_timeout_s``), so slow or huge bodies never hold a replica slot;
then at most ``replicas x max_ongoing_requests`` routed at once, ``max_queued_requests``
waiting in the proxy, and beyond that an immediate 503 with ``Retry-After``.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations
# (`request: Request`, imported inside build_app) as real objects.
import asyncio
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from critic.bundle import BASE_VARIANT
from critic.serve.guard import UVLOOP_ENV
from critic.serve.providers import DEFAULT_DEVICE


@dataclass
class ServeOptions:
    replicas: int = 1
    max_batch_size: int = 32  # requests merged into one inference call
    batch_wait_ms: float = 5.0
    max_texts: int = 256  # per request
    max_chars: int = 100_000  # per text
    max_ongoing_requests: int = 64  # per replica
    max_queued_requests: int = 256  # admitted beyond what the replicas run at once
    max_body_bytes: int = 4 << 20  # per request body
    body_timeout_s: float = 10.0  # for a request body to arrive, after its headers
    header_timeout_s: float = 10.0  # for a request's headers to arrive
    max_buffered_bytes: int = 256 << 20  # request bodies held by the proxy at once
    threads: int | None = None  # inference threads per replica (default: cores / replicas)
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

    def proxy_env(self) -> dict[str, str]:
        """Environment for the Serve controller (inherited by its HTTP proxies) that puts
        critic's admission middleware in front of every request (:mod:`critic.serve.guard`)."""
        from critic.serve.guard import proxy_env

        return proxy_env(
            capacity=self.replicas * self.max_ongoing_requests,
            max_waiting=self.max_queued_requests,
            max_body_bytes=self.max_body_bytes,
            body_timeout_s=self.body_timeout_s,
            header_timeout_s=self.header_timeout_s,
            max_buffered_bytes=max(self.max_buffered_bytes, self.max_body_bytes),
        )


class RequestError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_texts(body: Any, max_texts: int, max_chars: int) -> list[str]:
    """The request's texts, or RequestError(4xx) saying what is wrong."""
    if not isinstance(body, dict) or "texts" not in body:
        raise RequestError(400, 'expected a JSON object {"texts": ["...", ...]}')
    texts = body["texts"]
    if not isinstance(texts, list) or not texts:
        raise RequestError(400, "texts must be a non-empty list of strings")
    if len(texts) > max_texts:
        raise RequestError(413, f"{len(texts)} texts in one request; the limit is {max_texts}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f"texts[{i}] is {type(text).__name__}, not a string")
        if len(text) > max_chars:
            raise RequestError(
                413, f"texts[{i}] has {len(text)} characters; the limit is {max_chars}"
            )
    return texts


def model_summary(bundle, source: str) -> dict[str, Any]:
    """What GET /model shows: the bundle's metadata without the file table."""
    meta = {k: v for k, v in bundle.meta.items() if k not in ("files", "manifest_sha256")}
    return {"path": source, "manifest_sha256": bundle.meta["manifest_sha256"], **meta}


def build_app(bundle, options: ServeOptions):
    """The Ray Serve application for a loaded ``bundle``. A bundle on a storage URI is
    fetched by each replica; a local one is shipped to them through Ray's object store, so
    replicas on nodes that cannot read this machine's files load it too."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from ray import serve

    from critic.serve.shipping import ShippedBundle

    options.validate()
    api = FastAPI(title="critic", description="Review sentiment from a critic bundle.")

    @serve.deployment(
        num_replicas=options.replicas,
        max_ongoing_requests=options.max_ongoing_requests,
        max_queued_requests=options.max_queued_requests,
        # Replicas would inherit the proxies' asyncio loop (guard.proxy_env); they accept no
        # connections and answer faster on uvloop.
        ray_actor_options={
            "num_cpus": 0.5,
            "runtime_env": {"env_vars": {UVLOOP_ENV: os.environ.get(UVLOOP_ENV, "1")}},
        },
        health_check_period_s=5,
    )
    @serve.ingress(api)
    class Critic:
        def __init__(self, shipped: ShippedBundle, options: dict[str, Any]) -> None:
            self.options = ServeOptions(**options)
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            threads = self.options.threads or max(1, cores // self.options.replicas)
            self.runtime = shipped.load(
                variant=self.options.variant, device=self.options.device, threads=threads
            )
            self.card = model_summary(self.runtime.bundle, shipped.source)
            self.predict_batch.set_max_batch_size(self.options.max_batch_size)
            self.predict_batch.set_batch_wait_timeout_s(self.options.batch_wait_ms / 1000)

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
        async def predict_batch(self, requests: list[list[str]]) -> list[np.ndarray]:
            """Many requests, one inference call (off the event loop: it releases the GIL)."""
            texts = [t for texts in requests for t in texts]
            p = await asyncio.to_thread(self.runtime.predict, texts)
            bounds = np.cumsum([len(texts) for texts in requests])[:-1]
            return np.split(p, bounds)

        @api.post("/predict")
        async def predict(self, request: Request):
            try:
                body = json.loads(await request.body())
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
            try:
                texts = check_texts(body, self.options.max_texts, self.options.max_chars)
            except RequestError as e:
                return JSONResponse({"error": str(e)}, status_code=e.status)
            p = await self.predict_batch(texts)
            return {
                "probabilities": [float(v) for v in p],
                "labels": self.runtime.to_labels(p).tolist(),
            }

        @api.get("/healthz")
        async def healthz(self):
            return {"status": "ok"}

        @api.get("/model")
        async def model_info(self):
            return self.card

    return Critic.bind(ShippedBundle(bundle), asdict(options))
