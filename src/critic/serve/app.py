"""``critic serve --engine ray``: the HTTP application (:mod:`.http`) in Ray Serve replicas,
as many as ``replicas``, on the nodes of a Ray cluster.

Before a request reaches a replica, Ray Serve's HTTP proxy admits it (:mod:`.guard`): its
whole body read first (``max_body_bytes``, ``body_timeout_s``), so slow or huge bodies never
hold a replica slot; then at most ``replicas x max_ongoing_requests`` routed at once,
``max_queued_requests`` waiting in the proxy, and beyond that an immediate 503 with
``Retry-After``. Each replica batches the requests it holds (:mod:`.predictor`).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from .guard import UVLOOP_ENV, proxy_env
from .options import ServeOptions, model_summary


def serve_proxy_env(options: ServeOptions) -> dict[str, str]:
    """Environment for the Serve controller (inherited by its HTTP proxies) that puts
    critic's admission middleware in front of every request (:mod:`critic.serve.guard`)."""
    return proxy_env(
        **options.guard_settings(options.replicas), header_timeout_s=options.header_timeout_s
    )


def build_app(bundle, options: ServeOptions):
    """The Ray Serve application for a loaded ``bundle``. A bundle on a storage URI is
    fetched by each replica; a local one is shipped to them through Ray's object store, so
    replicas on nodes that cannot read this machine's files load it too."""
    from ray import serve

    from .shipping import ShippedBundle

    options.validate()

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
    class Critic:
        def __init__(self, shipped: ShippedBundle, options: dict[str, Any]) -> None:
            from .http import CriticApp
            from .predictor import Predictor

            self.options = ServeOptions(**options)
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
            threads = self.options.threads or max(1, cores // self.options.replicas)
            runtime = shipped.load(
                variant=self.options.variant, device=self.options.device, threads=threads
            )
            card = model_summary(runtime.bundle, shipped.source)
            self.app = CriticApp(Predictor(runtime, self.options), card)

        async def __call__(self, request):
            from starlette.responses import Response

            status, body = await self.app.handle(request.method, request.url.path, request.body)
            return Response(body, status_code=status, media_type="application/json")

    return Critic.bind(ShippedBundle(bundle), asdict(options))
