"""``critic serve``'s HTTP application, the same for both engines:

POST /predict {"texts": [...]} -> {"probabilities": [...], "labels": [...]}
                                  (k > 2 labels: a list of k per text, and "classes")
GET  /healthz                  -> {"status": "ok"}
GET  /model                    -> the bundle's metadata

The local engine runs it as a plain ASGI application under uvicorn (:mod:`.local`); the Ray
engine calls :meth:`CriticApp.handle` from each Serve replica (:mod:`.app`). Admission (whole
bodies first, bounded concurrency, 503 beyond it) happens before either, in
:mod:`.guard`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from .predictor import Answer, Predictor, error_body

JSON_HEADERS = [(b"content-type", b"application/json")]


class CriticApp:
    """The routes over a :class:`~.predictor.Predictor` and the bundle's card."""

    def __init__(self, predictor: Predictor, card: dict[str, Any]) -> None:
        self.predictor = predictor
        self.card = json.dumps(card).encode()

    async def handle(self, method: str, path: str, body: Callable[[], Awaitable[bytes]]) -> Answer:
        """The status and JSON body for a request (``body`` reads the request body)."""
        if path == "/predict":
            if method != "POST":
                return 405, error_body('POST a JSON object {"texts": [...]} to /predict')
            try:
                return await self.predictor.answer(await body())
            except Exception as e:  # the model failed on this batch: say so, keep serving
                return 500, error_body(f"inference failed: {type(e).__name__}: {e}")
        if method not in ("GET", "HEAD"):
            return 405, error_body(f"{path} answers GET")
        if path == "/healthz":
            return 200, b'{"status": "ok"}'
        if path == "/model":
            return 200, self.card
        return 404, error_body(f"no such path {path}; see /predict, /healthz, /model")

    async def __call__(self, scope, receive, send) -> None:
        """ASGI (HTTP only; the lifespan protocol is not used)."""
        if scope["type"] != "http":
            return

        async def body() -> bytes:
            chunks = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return b""
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    return b"".join(chunks)

        status, payload = await self.handle(scope["method"], scope["path"], body)
        headers = [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
