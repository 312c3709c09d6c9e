"""critic serve's batching and request rules (critic.serve.predictor), without a server: the
model is a recording function, since what is under test is how calls are formed."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from critic.serve.options import ServeOptions
from critic.serve.predictor import INLINE_CHARS, Batcher, Predictor


class Recorder:
    """A model that takes ``seconds`` per call and returns each text's length."""

    def __init__(self, seconds: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.threads: list[str] = []
        self.seconds, self.fail_on = seconds, fail_on
        self.running = self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
            self.threads.append(threading.current_thread().name)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        if self.fail_on in texts:
            raise ValueError(f"cannot score {self.fail_on!r}")
        return np.array([len(t) for t in texts], dtype=np.float32)


def run(coro):
    return asyncio.run(coro)


def test_a_request_alone_is_scored_at_once_on_the_loop():
    model = Recorder()
    batcher = Batcher(model, max_batch_size=8)

    async def main():
        return await batcher.predict(["abc", "de"])

    assert run(main()).tolist() == [3, 2]
    assert model.calls == [["abc", "de"]]
    assert model.threads == [threading.current_thread().name]  # no hop to a thread


def test_requests_arriving_during_a_call_share_the_next_one_in_order():
    big = "x" * (INLINE_CHARS + 1)  # goes to a thread, so the loop takes the others meanwhile
    model = Recorder(seconds=0.2)
    batcher = Batcher(model, max_batch_size=3)

    async def main():
        first = asyncio.create_task(batcher.predict([big]))
        await asyncio.sleep(0.05)  # the first call is running
        rest = [asyncio.create_task(batcher.predict([f"r{i}", "yy" * i])) for i in range(5)]
        return await first, await asyncio.gather(*rest)

    first, rest = run(main())
    assert first.tolist() == [len(big)]
    # Each caller gets its own texts' results, in its own order.
    assert [r.tolist() for r in rest] == [[2, 2 * i] for i in range(5)]
    # One call for the first, then the five waiting ones in calls of at most 3 requests.
    assert [len(c) for c in model.calls] == [1, 6, 4]
    assert model.calls[1] == ["r0", "", "r1", "yy", "r2", "yyyy"]


def test_parallel_calls_overlap_for_big_requests_only():
    """parallel=2 (two lanes): a request of enough texts arriving while one call runs starts
    a second call at once; small ones wait and share the next free call; each caller gets
    its own results."""
    big = "x" * (INLINE_CHARS + 1)
    model = Recorder(seconds=0.2)
    batcher = Batcher(model, max_batch_size=8, parallel=2, parallel_texts=3)

    async def main():
        first = asyncio.create_task(batcher.predict([big]))
        await asyncio.sleep(0.05)
        small = [asyncio.create_task(batcher.predict([f"r{i}"])) for i in range(2)]
        await asyncio.sleep(0.05)  # 2 texts wait: fewer than 3, no second call yet
        assert model.most_at_once == 1
        many = asyncio.create_task(batcher.predict(["a", "bb", "ccc"]))
        await asyncio.sleep(0.05)  # 5 texts wait: a second call runs them
        assert model.most_at_once == 2
        return await first, await asyncio.gather(*small), await many

    first, small, many = run(main())
    assert first.tolist() == [len(big)] and many.tolist() == [1, 2, 3]
    assert [r.tolist() for r in small] == [[2], [2]]
    assert [len(c) for c in model.calls] == [1, 5]
    assert batcher.running == 0 and batcher.waiting_texts == 0


def test_a_failed_call_fails_its_own_requests_only():
    big = "x" * (INLINE_CHARS + 1)
    model = Recorder(seconds=0.1, fail_on="bad")
    batcher = Batcher(model, max_batch_size=2)

    async def main():
        first = asyncio.create_task(batcher.predict([big]))
        await asyncio.sleep(0.03)
        doomed = [asyncio.create_task(batcher.predict(t)) for t in (["ok"], ["bad"])]
        later = asyncio.create_task(batcher.predict(["fine"]))
        results = await asyncio.gather(first, *doomed, later, return_exceptions=True)
        return results, await batcher.predict(["after"])

    (first, ok, bad, later), after = run(main())
    assert first.tolist() == [len(big)]
    assert isinstance(ok, ValueError) and isinstance(bad, ValueError)  # the same call
    assert later.tolist() == [4] and after.tolist() == [5]  # the batcher goes on


def test_batch_wait_collects_requests_that_arrive_soon_after():
    big = "x" * (INLINE_CHARS + 1)
    model = Recorder()
    batcher = Batcher(model, max_batch_size=8, batch_wait_s=0.2)

    async def main():
        tasks = [asyncio.create_task(batcher.predict([big]))]
        await asyncio.sleep(0.05)
        tasks += [asyncio.create_task(batcher.predict(["a"])) for _ in range(3)]
        return await asyncio.gather(*tasks)

    run(main())
    assert [len(c) for c in model.calls] == [4]
    # A wait asked for applies to a small request alone too: it waits in case others come.
    started = time.perf_counter()
    run(batcher.predict(["tiny"]))
    assert time.perf_counter() - started >= 0.2 and model.threads[-1] != "MainThread"


class FakeRuntime:
    threads = 1
    binary = True

    def __init__(self) -> None:
        self.predict = Recorder()

    def to_labels(self, p: np.ndarray) -> np.ndarray:
        return np.where(p >= 3, "long", "short")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[" * 100_000, 400, "not valid JSON"),
        (b'{"texts": []}', 400, "non-empty list"),
        (b'{"texts": ["a", 1]}', 400, "texts[1] is int"),
        (json.dumps({"texts": ["a"] * 5}).encode(), 413, "5 texts in one request; the limit is 4"),
        (json.dumps({"texts": ["a" * 11]}).encode(), 413, "texts[0] has 11 characters"),
    ],
)
def test_bad_bodies_get_their_status_and_reason(body, status, message):
    predictor = Predictor(FakeRuntime(), ServeOptions(max_texts=4, max_chars=10))
    got_status, got = run(predictor.answer(body))
    assert got_status == status and message in json.loads(got)["error"]


def test_a_good_body_gets_probabilities_and_labels_in_order():
    predictor = Predictor(FakeRuntime(), ServeOptions())
    status, body = run(predictor.answer(json.dumps({"texts": ["abcd", "ab"]}).encode()))
    assert status == 200
    assert json.loads(body) == {"probabilities": [4.0, 2.0], "labels": ["long", "short"]}
