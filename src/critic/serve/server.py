"""``critic serve --engine ray``: a bundle on Ray Serve until Ctrl-C or SIGTERM: start Serve
with critic's admission in its proxies, deploy the application, report a replica that cannot
start by its own error, drain the proxies (:mod:`.ray_drain`) and stop what was started.
Also what both engines check before they start (:func:`refuse_a_busy_port`)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from typing import Literal

from critic.bundle import Bundle
from critic.cluster import connect_ray, error_line, joins_a_cluster

from .app import build_app, serve_proxy_env
from .options import ServeOptions
from .ray_drain import create_signal, drain

Proxies = Literal["head", "every-node"]
APP_NAME = "critic"


def serve_on_ray(
    bundle: Bundle,
    options: ServeOptions,
    *,
    host: str,
    port: int,
    proxies: Proxies = "head",
    num_cpus: int | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """Serve ``bundle`` at http://host:port until Ctrl-C or SIGTERM (Ray Serve's proxies on the
        head node only, or on every node); ``say`` (default: print) gets a line when requests are
    served and one when it stops.
        Joins the cluster of a Ray job (or RAY_ADDRESS), else starts an embedded Ray."""
    say = say or print_line
    options.validate()
    refuse_a_busy_port(host, port)
    connect_ray(num_cpus)
    from ray import serve

    from critic.console import quiet_loggers

    quiet_loggers()  # Ray Serve sets its logger's level when it is imported

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    drain_signal = create_signal()
    try:
        serve.start(
            proxy_location="HeadOnly" if proxies == "head" else "EveryNode",
            http_options={"host": host, "port": port},
            controller_options={"runtime_env": {"env_vars": serve_proxy_env(options)}},
        )
    except Exception as e:  # the port taken between the check above and the proxy's bind
        if "Failed to bind to address" not in str(e):
            raise
        raise OSError(
            f"cannot listen on {host}:{port}: another process took the port while Ray Serve "
            "started; pick another --port"
        ) from None
    try:
        _deploy(bundle, options)
        say(
            f"critic serve: {bundle.meta['model'].get('family')} model at "
            f"http://{host}:{port} (POST /predict, GET /healthz, GET /model); Ctrl-C or "
            "SIGTERM drains and stops"
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        for sig in (signal.SIGTERM, signal.SIGINT):  # the first one stops; a second waits
            signal.signal(sig, signal.SIG_IGN)
        running = len(serve.status().proxies)
        say(draining_line(options.drain_timeout_s))
        drained = drain(drain_signal, running, options.drain_timeout_s)
        if drained < running:
            say(f"critic serve: {running - drained} of {running} proxies did not drain in time")
        say("critic serve: stopping Ray Serve")
    finally:
        if joins_a_cluster():
            serve.shutdown()  # the cluster stays; the application and its proxies go
        else:  # an embedded Ray: ending it ends Serve, without Serve's shutdown warnings
            import ray

            ray.shutdown()
    say("critic serve: stopped")


def draining_line(timeout_s: float) -> str:
    """What both engines say when a drain starts."""
    return f"critic serve: draining: answering the requests under way (at most {timeout_s:g} s)"


def print_line(line: str) -> None:
    """A console line, flushed at once (a server's lines must not wait in a buffer)."""
    print(line, flush=True)


def _deploy(bundle: Bundle, options: ServeOptions) -> None:
    """Deploy the application; a replica that cannot start is a ValueError with its reason."""
    from ray import serve

    try:
        serve.run(build_app(bundle, options), name=APP_NAME, route_prefix="/")
    except RuntimeError as e:
        if "Deploying application" not in str(e):
            raise
        app = serve.status().applications.get(APP_NAME)
        report = "\n".join(d.message for d in app.deployments.values()) if app else ""
        reason = replica_error(report or str(e))
        raise ValueError(f"the model replica could not start: {reason}") from None


def replica_error(report: str) -> str:
    """The replica's own exception out of Ray Serve's deployment report (tracebacks of
    Ray's frames around it): its last ``SomeError: why`` line, without the module path."""
    line = error_line(report)
    if line is None:
        lines = report.strip().splitlines()
        line = lines[-1] if lines else "unknown (see the Ray Serve controller log)"
    return line[:500]


def refuse_a_busy_port(host: str, port: int) -> None:
    """An error when something already listens on host:port (Ray Serve's proxy binds with
    SO_REUSEPORT, so a second server would silently share the port with the first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not busy
        try:
            probe.bind((host, port))
        except OSError as e:
            raise OSError(
                f"cannot listen on {host}:{port} ({e.strerror}); is another critic serve "
                "running there? Stop it or pick another --port"
            ) from None
