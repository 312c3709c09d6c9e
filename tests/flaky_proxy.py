"""A flaky S3 endpoint for the tests: an HTTP proxy on 127.0.0.1 in front of the test S3
server that fails a share of the requests it forwards, the way a real store does now and then.

Each request is read whole, and with probability ``rate`` gets one fault instead of (or in the
middle of) the server's answer:

- ``503``: 503 Slow Down, with S3's XML error body (the request is not forwarded);
- ``500``: 500 Internal Error, after forwarding (a write may have happened: S3 semantics);
- ``reset``: the connection is reset before any answer (after forwarding);
- ``truncated``: the answer's headers and half of its body, then the connection is closed.

Bounded: it serves only 127.0.0.1 and stops with its ``with`` block. Not a test itself.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("503", "500", "reset", "truncated")
_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>flaky</RequestId></Error>"
)


class FlakyProxy:
    """``with FlakyProxy(upstream, rate=0.18, seed=1) as proxy:`` ``proxy.endpoint`` is the
    URL to give clients; ``proxy.faults`` counts the faults injected, ``proxy.requests`` all
    requests seen, ``proxy.methods_seen`` them by HTTP method."""

    def __init__(self, upstream: str, rate: float, seed: int = 0, methods=None) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.rate = rate
        self.methods = methods  # None: fail any method
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self.methods_seen: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _draw(self, method: str) -> str | None:
        with self._lock:
            self.requests += 1
            self.methods_seen[method] += 1
            if self.methods is not None and method not in self.methods:
                return None
            if self._random.random() >= self.rate:
                return None
            fault = self._random.choice(FAULTS)
            self.faults[fault] += 1
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reset(self) -> None:
                linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True

            def _send(self, status: int, headers, body: bytes, *, cut: bool = False) -> None:
                self.send_response(status)
                head = self.command == "HEAD"  # keeps the object's Content-Length, no body
                for key, value in headers:
                    if key.lower() in ("transfer-encoding", "connection"):
                        continue
                    if key.lower() != "content-length" or head:
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(body)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if not head:
                    self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.close_connection = True

            def _forward(self, body: bytes):
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"
                    }
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    return answer.status, answer.getheaders(), answer.read()
                finally:
                    conn.close()

            def _any(self) -> None:
                body = self._body()
                fault = proxy._draw(self.command)
                if fault == "503":
                    xml = _XML.format(code="SlowDown", message="Please reduce your request rate.")
                    self._send(503, [("Content-Type", "application/xml")], xml.encode())
                    return
                status, headers, answer = self._forward(body)
                if fault == "500":
                    xml = _XML.format(
                        code="InternalError", message="We encountered an internal error."
                    )
                    self._send(500, [("Content-Type", "application/xml")], xml.encode())
                elif fault == "reset":
                    self._reset()
                elif fault == "truncated" and len(answer) > 1 and self.command != "HEAD":
                    self._send(status, headers, answer, cut=True)
                else:
                    self._send(status, headers, answer)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def send_response(self, code, message=None) -> None:  # no Server/Date noise
                self.send_response_only(code, message)

        return Handler
