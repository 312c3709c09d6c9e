"""What ``critic serve`` does with a request, whichever engine carries it: read the JSON body,
check the texts, score them together with the other requests waiting at that moment, and
answer with JSON.

Batching adds no wait: a request that arrives while no inference runs is scored at once, alone;
requests that arrive while one runs are scored together in the next call (at most
``max_batch_size`` requests, or after waiting ``batch_wait_ms`` for more when that is set).
The inference call runs in a worker thread (it releases the GIL), so the event loop keeps
reading and answering requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

Answer = tuple[int, bytes]  # an HTTP status and a JSON body
# A request alone with at most this many characters is scored on the event loop itself: a
# few tens of microseconds, less than handing it to a thread and back.
INLINE_CHARS = 4096


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


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


class Batcher:
    """Concurrent calls of ``predict(texts)`` merged into calls of ``infer`` on all their
    texts, in worker threads, at most ``parallel`` calls at a time.

    A second call (up to ``parallel``, the Runtime's lanes) starts while one runs only when
    at least ``parallel_texts`` texts wait: a call's rows are cut across the lanes, and the
    lane that finishes first would otherwise idle until the slowest one is done, and again
    while the next request is read (measured at 256 texts per request, 2 clients, 2 cores:
    70 % of ``Runtime.predict``'s texts/s with one call at a time). Fewer waiting texts share
    the next call instead: small calls side by side cost more than they overlap."""

    def __init__(
        self,
        infer: Callable[[list[str]], np.ndarray],
        max_batch_size: int,
        batch_wait_s: float = 0.0,
        parallel: int = 1,
        parallel_texts: int = 64,
    ) -> None:
        self.infer = infer
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.parallel = max(1, parallel)
        self.parallel_texts = parallel_texts
        self.waiting: list[tuple[list[str], asyncio.Future]] = []
        self.waiting_texts = 0
        self.running = 0  # calls of infer under way

    async def predict(self, texts: list[str]) -> np.ndarray:
        if not (self.running or self.batch_wait_s) and sum(map(len, texts)) <= INLINE_CHARS:
            return self.infer(texts)  # alone, small, and no wait asked for: no thread hop
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((texts, future))
        self.waiting_texts += len(texts)
        if not self.running or (
            self.running < self.parallel and self.waiting_texts >= self.parallel_texts
        ):
            self.running += 1
            asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self.waiting:
                if self.batch_wait_s > 0 and len(self.waiting) < self.max_batch_size:
                    await asyncio.sleep(self.batch_wait_s)
                batch = self.waiting[: self.max_batch_size]
                del self.waiting[: len(batch)]
                self.waiting_texts -= sum(len(texts) for texts, _ in batch)
                if batch:
                    await self._score(batch)
        finally:
            self.running -= 1

    async def _score(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        texts = batch[0][0] if len(batch) == 1 else [t for texts, _ in batch for t in texts]
        try:
            p = await asyncio.to_thread(self.infer, texts)
        except Exception as e:  # every caller of this batch gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        start = 0
        for texts, future in batch:
            if not future.done():  # a caller that gave up (disconnected) is skipped
                future.set_result(p[start : start + len(texts)])
            start += len(texts)


class Predictor:
    """A loaded Runtime behind the request rules of ``options`` (a ServeOptions)."""

    def __init__(self, runtime, options) -> None:
        self.runtime = runtime
        self.options = options
        self.batcher = Batcher(
            runtime.predict,
            options.max_batch_size,
            options.batch_wait_ms / 1000,
            parallel=runtime.threads,
        )

    async def answer(self, body: bytes) -> Answer:
        """The status and JSON body for a POST /predict body."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:  # also: nested too deep, not UTF-8
            return 400, error_body("the body is not valid JSON")
        try:
            texts = check_texts(payload, self.options.max_texts, self.options.max_chars)
        except RequestError as e:
            return e.status, error_body(str(e))
        p = np.ascontiguousarray(await self.batcher.predict(texts))
        # float32 written as float32 (shortest digits that read back the same float32)
        out = {"probabilities": p, "labels": self.runtime.to_labels(p).tolist()}
        if not self.runtime.binary:  # each text's probabilities follow this order
            out["classes"] = self.runtime.labels
        return 200, orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)
