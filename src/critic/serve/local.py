"""``critic serve --engine local``: the HTTP application (:mod:`.http`) in this process, on
uvicorn, with one Runtime using every core (or ``--threads``).

The same admission as the Ray engine's proxies (:mod:`.guard`: whole bodies first, at most
``max_ongoing_requests`` at once and ``max_queued_requests`` waiting, then 503) and the same
protocol (:mod:`.proxy_protocol`: a deadline for headers, TCP_NODELAY), plus a drain:
SIGTERM or Ctrl-C stops accepting connections, answers every request already sent, closes
each connection after its answer, and returns within ``drain_timeout_s``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import uvicorn

from critic.bundle import Bundle

from .guard import RequestGuard
from .http import CriticApp
from .options import ServeOptions, model_summary
from .predictor import Predictor
from .proxy_protocol import protocol_class
from .runtime import Runtime
from .server import draining_line, print_line, refuse_a_busy_port

# An idle keep-alive connection is closed after this long, as Ray Serve's proxies do.
KEEP_ALIVE_S = 90


def serve_locally(
    bundle: Bundle,
    options: ServeOptions,
    *,
    host: str,
    port: int,
    say: Callable[[str], None] | None = None,
) -> None:
    """Serve ``bundle`` at http://host:port until SIGTERM or Ctrl-C, then drain and return."""
    say = say or print_line
    options.validate()
    refuse_a_busy_port(host, port)
    try:  # threads=None: every core
        runtime = Runtime(
            bundle, variant=options.variant, device=options.device, threads=options.threads
        )
    except Exception as e:  # onnxruntime's own errors (a model it cannot load) say why
        reason = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"the model could not load: {type(e).__name__}: {reason}"[:500]) from None
    app = CriticApp(Predictor(runtime, options), model_summary(bundle, bundle.source))
    config = uvicorn.Config(
        RequestGuard(app, **options.guard_settings(replicas=1)),
        host=host,
        port=port,
        http=protocol_class(options.header_timeout_s, drain=True),
        # asyncio's loop accepts every waiting connection per iteration (uvloop: one).
        loop="uvloop",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=options.drain_timeout_s,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = _Server(config, say, bundle.meta["model"].get("family"))
    # uvicorn handles SIGTERM and SIGINT while it runs, then raises the signal again once it
    # has drained: these handlers take that one, so the command ends normally (exit 0).
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("critic serve: stopped")


class _Server(uvicorn.Server):
    """uvicorn's Server that says when it serves and when it starts to drain."""

    def __init__(self, config: uvicorn.Config, say: Callable[[str], None], family: str | None):
        super().__init__(config)
        self.say, self.family = say, family

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self.say(
                f"critic serve: {self.family} model at http://{self.config.host}:"
                f"{self.config.port} (POST /predict, GET /healthz, GET /model); Ctrl-C or "
                "SIGTERM drains and stops"
            )

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit:
            self.say(draining_line(self.config.timeout_graceful_shutdown))
        super().handle_exit(sig, frame)


def _ignore(*_: object) -> None:
    pass
