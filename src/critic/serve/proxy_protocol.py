"""uvicorn's protocol class for critic serve: a deadline for request headers (against
slow-header clients), ``TCP_NODELAY`` on every connection, and a drain that answers every
request a client sends before the server stops (the local engine's server, and the Ray
engine's proxies: :mod:`critic.serve.ray_drain`).

uvicorn, which Ray Serve runs its proxies on, times out idle keep-alive connections but not
a request whose headers arrive slowly: a client sending one header byte every few seconds
holds its connection forever. ASGI middleware cannot help, since it only runs once the
headers are complete. :func:`install` therefore gives uvicorn a protocol class that answers
408 and closes the connection when a request's headers are not complete within
``timeout_s`` of its first byte (or of the connection opening, for the first request).

The same class turns Nagle's algorithm off. uvloop did so for every TCP connection; asyncio's
loop, which critic's proxies run on (see :func:`critic.serve.guard.proxy_env`), only does for
sockets whose ``proto`` is TCP, and Ray Serve's listening socket (hence every accepted one)
has ``proto`` 0: uvicorn writes a response's headers and body separately, and the body then
waited for the client's delayed ACK, 40 ms a request.

Ray Serve builds uvicorn's config itself, with the default ``http="auto"``; uvicorn looks that
name up in ``uvicorn.config.HTTP_PROTOCOLS`` when the server starts. :func:`install` points
it at a subclass of uvicorn's httptools protocol (the one ``auto`` picks when httptools is
installed, as Ray Serve's dependencies ensure), so it must run in the proxy process before its
server starts: :func:`critic.serve.guard.proxy_middlewares` calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 36\r\n"
    b"connection: close\r\n\r\nthe request headers arrived too late"
)

Protocol: type | None = None  # the installed class (uvicorn imports it by name)


class NoDelay:
    """Mixin for an asyncio protocol: ``TCP_NODELAY`` on its TCP connection."""

    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # a connection already reset
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class HeaderDeadline:
    """Mixin for uvicorn's ``HttpToolsProtocol``, whose parser calls ``on_message_begin`` at
    a request's first byte and ``on_headers_complete`` at the end of its headers."""

    cycle: Any  # set by uvicorn: the current request's cycle
    transport: Any
    loop: Any
    header_timeout_s: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._set_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._set_deadline()

    def on_headers_complete(self) -> None:
        self._clear_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def _set_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # never inside a response
            self.transport.write(TIMEOUT_ANSWER)
        self.transport.close()


class Drain:
    """Mixin for uvicorn's ``HttpToolsProtocol``: a graceful shutdown that leaves no request
    without an answer.

    uvicorn's own shutdown closes an idle keep-alive connection at once, and a request the
    client had just sent on it (in flight, or unread in the socket) is lost: the client sees
    the connection close with no response. Here a connection that is idle when the server
    stops stays open ``linger_s`` more; a request arriving meanwhile is answered like any
    other, with ``Connection: close``. A request under way is answered, with
    ``Connection: close`` too, and the connection closes after it. uvicorn waits for every
    connection to close (at most its ``timeout_graceful_shutdown``)."""

    cycle: Any
    transport: Any
    loop: Any
    linger_s: float = 1.0
    _draining = False
    _receiving = False
    _linger: asyncio.TimerHandle | None = None

    def on_message_begin(self) -> None:
        self._receiving = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._receiving = False
        super().on_headers_complete()
        if self._draining:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            self._linger = self.loop.call_later(self.linger_s, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def _close_if_idle(self) -> None:
        self._linger = None
        if self.transport.is_closing():
            return
        if self._receiving:  # a request is arriving: its headers have their own deadline
            self._linger = self.loop.call_later(self.linger_s, self._close_if_idle)
        elif self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def protocol_class(header_timeout_s: float, drain: bool = False) -> type:
    """uvicorn's httptools protocol with the header deadline and TCP_NODELAY (and the drain).
    ImportError without httptools."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    mixins = (Drain, NoDelay, HeaderDeadline) if drain else (NoDelay, HeaderDeadline)
    return type(
        "CriticProtocol",
        (*mixins, HttpToolsProtocol),
        {"header_timeout_s": float(header_timeout_s)},
    )


def install(timeout_s: float) -> bool:
    """Make uvicorn's ``http="auto"`` protocol enforce the header deadline (and set
    ``TCP_NODELAY``) in this process. False when uvicorn would not use httptools or has no
    such setting (nothing changes)."""
    global Protocol
    from uvicorn import config
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return False
    if AutoHTTPProtocol is not HttpToolsProtocol or config.HTTP_PROTOCOLS.get("auto") is None:
        return False
    Protocol = protocol_class(timeout_s, drain=True)  # drains when its server shuts down
    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:Protocol"
    return True
