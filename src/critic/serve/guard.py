"""Admission for ``critic serve``: an ASGI middleware that runs in Ray Serve's HTTP proxy,
before a request is routed to a replica.

- **Whole bodies first.** A request's body is read here, within ``body_timeout_s`` (else
  408) and at most ``max_body_bytes`` (else 413; a larger ``Content-Length`` is refused
  before any byte is read). Only then is it admitted and routed, so a slow client holds a
  connection, never an admission place or a replica slot.
- **Queueing here, not in Ray Serve's router.** At most ``capacity`` requests (what the
  replicas run at once) are routed at a time; up to ``max_waiting`` more wait here, first
  come first served; the next one gets an immediate 503 with ``Retry-After``. Requests
  queued in Ray Serve's router instead made it back off and retry: measured on 2 cores,
  throughput fell from 241 to 25 requests/s when 128 clients shared 64 replica slots.
- **Slow headers.** Headers slower than ``header_timeout_s`` get 408 and the connection is
  closed (see :mod:`critic.serve.proxy_protocol`; middleware only runs after the headers).
- **Bounded memory.** Bodies being buffered add up to at most ``max_buffered_bytes``; past
  it, 503 with ``Retry-After``.
- **Cheap 503s.** A 503 keeps the connection open when the request's body is bounded (read
  whole, or a ``Content-Length`` within the limit, which uvicorn then discards), so a
  client that honours ``Retry-After`` comes back without a new TCP connection; 408 and 413
  close it.

Paths other than ``guarded`` (health checks, metadata) pass straight through.

Ray Serve builds its proxies' middlewares from the import path in
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``: :func:`proxy_env` gives the environment that
points it at :func:`proxy_middlewares` with critic's settings, for the Serve controller's
runtime environment (its proxies inherit it).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

Scope = dict[str, Any]
BUSY = 503, "the server is at capacity; retry shortly", True
SETTINGS_ENV = "CRITIC_SERVE_GUARD"
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
UVLOOP_ENV = "RAY_USE_UVLOOP"  # read by each Ray worker process when it starts


def proxy_env(**settings: Any) -> dict[str, str]:
    """Environment variables that give Ray Serve's proxies a RequestGuard(**settings).

    They also keep Ray's workers there on asyncio's own event loop instead of uvloop: libuv
    accepts one connection per loop iteration, so while the proxy was busy routing requests,
    new connections waited seconds in the kernel's accept queue (measured on 2 cores with
    1,000 clients: a 503 took 1.5-2.5 s, nearly all of it before the proxy saw the
    request). asyncio accepts every waiting connection in one iteration.
    """
    return {
        CALLBACK_ENV: f"{__name__}.proxy_middlewares",
        SETTINGS_ENV: json.dumps(settings),
        UVLOOP_ENV: "0",
    }


def proxy_middlewares() -> list:
    """Called by Ray Serve in each HTTP proxy (see :func:`proxy_env`), before the proxy's
    server starts: also sets its header deadline (``header_timeout_s``) and its drain
    (:mod:`critic.serve.ray_drain`)."""
    from starlette.middleware import Middleware

    from .proxy_protocol import install
    from .ray_drain import hook_uvicorn

    settings = json.loads(os.environ[SETTINGS_ENV])
    header_timeout_s = settings.pop("header_timeout_s", None)
    if header_timeout_s is not None and not install(header_timeout_s):
        print("critic serve: warning: this uvicorn cannot time out slow request headers")
    hook_uvicorn()
    return [Middleware(RequestGuard, **settings)]


class RequestGuard:
    def __init__(
        self,
        app,
        *,
        capacity: int,
        max_waiting: int,
        max_body_bytes: int,
        body_timeout_s: float,
        max_buffered_bytes: int,
        guarded: tuple[str, ...] = ("/predict",),
    ) -> None:
        self.app = app
        self.capacity = asyncio.Semaphore(capacity)
        self.max_waiting = max_waiting
        self.waiting = 0
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_buffered_bytes = max_buffered_bytes
        self.guarded = guarded
        self.buffered = 0

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.guarded:
            await self.app(scope, receive, send)
            return
        if self._full():  # at once, without reading the body: shedding must be cheap
            declared = _content_length(scope)
            bounded = declared is not None and declared <= self.max_body_bytes
            await _reply(send, *BUSY, close=not bounded)
            return
        body = await self._read_body(scope, receive, send)
        if not isinstance(body, bytes):
            return
        if self._full():
            await _reply(send, *BUSY, close=False)
            return
        self.waiting += 1
        try:
            await self.capacity.acquire()  # first come, first served
        finally:
            self.waiting -= 1
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.capacity.release()

    def _full(self) -> bool:
        return self.capacity.locked() and self.waiting >= self.max_waiting

    async def _read_body(self, scope: Scope, receive, send) -> bytes | None:
        """The whole body, or None after answering (413, 408, 503) or a disconnect."""
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _reply(send, 413, self._too_large(declared))
            return None
        held: list[bytes] = []
        try:
            answer = await asyncio.wait_for(self._collect(receive, held), self.body_timeout_s)
        except asyncio.TimeoutError:
            answer = 408, f"the request body did not arrive within {self.body_timeout_s:g} s"
        finally:
            self.buffered -= sum(len(chunk) for chunk in held)
        if isinstance(answer, tuple):
            await _reply(send, *answer)
            return None
        return answer

    async def _collect(self, receive, held: list[bytes]):
        """Body chunks into ``held`` until the last one: the body, None on a disconnect, or
        (status, message[, retry]) to answer with."""
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return 413, self._too_large(size)
            if self.buffered + len(chunk) > self.max_buffered_bytes:
                return BUSY
            held.append(chunk)
            self.buffered += len(chunk)
            if not message.get("more_body", False):
                return b"".join(held)

    def _too_large(self, size: int) -> str:
        return (
            f"the request body has {size} bytes or more; the limit is {self.max_body_bytes} "
            "(critic serve --max-body-bytes)"
        )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive):
    """A ``receive`` that gives the buffered body once, then waits on the real one (which
    reports the client's disconnect)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send, status: int, message: str, retry: bool = False, close: bool = True) -> None:
    """A JSON error; ``close`` ends the connection after it (the body may be unread)."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry:
        headers.append((b"retry-after", b"1"))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
