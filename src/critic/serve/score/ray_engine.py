"""``critic score --engine ray``: the local engine's loop in a pool of Ray actors.

Each scoring actor holds one Runtime and does for a whole shard what the local engine does:
read its segments (seeking straight to each one's first row, in whichever inputs it spans),
score them and commit the shard with the same atomic write. The driver only hands out shard
numbers, a run of consecutive shards to each actor (so it reads its inputs on, never again
from the start of a Parquet row group), keeping each actor two shards deep so none waits for
the next, and counts what comes back. No rows travel through Ray's object store: a shard is
read and written where it is scored, and an actor holds one shard at a time.

Ray takes seconds to start; meanwhile a thread of the driver plans the job (cuts the inputs,
fingerprints them, writes the manifest).

Shards, file names, manifest and output schema are the local engine's, so the guarantee is
the same: a re-run skips committed shards and ends with exactly the rows of one clean run.
"""

from __future__ import annotations

import collections
import concurrent.futures
import time
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from critic.bundle import Bundle
from critic.cluster import from_ray, ray_session, root_cause
from critic.storage import Location, location

from ..lease import OutputLease
from ..providers import DEFAULT_DEVICE
from ..shipping import ShippedBundle
from .job import check_job, close_output, pending_shards, prepare_output, progress_bar
from .layout import Shard
from .manifest import finished_job, input_stamps
from .options import ScoreError, ScoreOptions, Summary, shard_name
from .shards import Cursors, Written, read_shard_input, score_shard, write_shard

IN_FLIGHT = 2  # shards queued on each actor: the one being scored and the next
RESTARTS = 3  # an actor whose process or node died is started again (its shard retried)


def commit_shard(
    runtime, sources, offsets, shard: Shard, output: Location, options, cursors: Cursors
) -> Written:
    """Read (on from ``cursors``), score and commit one shard (``sources`` and ``offsets``:
    at least those of its segments' inputs); what was written."""
    fmt = options.format
    rows = read_shard_input(sources, offsets, shard, options, cursors)
    table = score_shard(runtime, rows)
    written = write_shard(table, output / shard_name(shard.number, fmt), fmt)
    pa.default_memory_pool().release_unused()  # the reader's buffers, ~6x the shard
    return written


class ShardScorer:
    """A Ray actor: one Runtime, scoring and committing whole shards of one job."""

    def __init__(
        self,
        shipped: ShippedBundle,
        runtime_options: dict[str, Any],
        output: str,
        options: ScoreOptions,
    ) -> None:
        self.runtime = shipped.load(**runtime_options)
        self.output, self.options = location(output), options
        self.cursors = Cursors()  # this actor's shards follow each other: inputs read on

    def score(self, inputs: dict[int, str], offsets: dict[int, int], shard: Shard) -> Written:
        """Commit ``shard`` (``inputs`` and ``offsets``: those of its segments)."""
        return commit_shard(
            self.runtime, inputs, offsets, shard, self.output, self.options, self.cursors
        )


def score_corpus_ray(
    bundle: Bundle,
    inputs: list[Location],
    output: str | Path | Location,
    options: ScoreOptions,
    *,
    actors: int | None = None,
    batch_size: int = 256,
    device: str = DEFAULT_DEVICE,
    num_cpus: int | None = None,
    progress: bool | None = None,
) -> Summary:
    """Score ``inputs`` on Ray (see the module docstring): the cluster of a Ray job or
    RAY_ADDRESS, else an embedded Ray of ``num_cpus``, joined only when there is work (a
    finished output answers at once)."""
    inputs = [location(p) for p in inputs]
    output = location(output)
    check_job(bundle, inputs, options)
    with OutputLease(output):
        done = finished_job(bundle, inputs, output, options)
        return done or _score_corpus_ray(
            bundle, inputs, output, options, actors, batch_size, device, num_cpus, progress
        )


def _score_corpus_ray(
    bundle, inputs, output, options, actors, batch_size, device, num_cpus, progress
) -> Summary:
    with concurrent.futures.ThreadPoolExecutor(1) as planner:
        planned = planner.submit(_plan, bundle, inputs, output, options)
        with ray_session(num_cpus) as session:
            try:
                pool = actor_pool(actors, batch_size, device, options)
                # Kept for the whole job: an actor started again loads the model again.
                shipped = ShippedBundle(bundle)
                scorers = start_scorers(shipped, pool, output, options)
                layout, stamps, pending, summary = planned.result()
                bar = progress_bar(layout.rows, progress)
                bar.update(layout.rows - summary.scored_rows)  # committed by an earlier run
                start_time = time.perf_counter()
                written: dict[str, Written] = {}

                def committed(shard: Shard, result: Written) -> None:
                    written[shard_name(shard.number, options.format)] = result
                    bar.update(result.rows)

                try:
                    uris = [p.uri for p in inputs]
                    _run(scorers, uris, layout.offsets, pending, committed)
                finally:
                    bar.close()
                summary.seconds = time.perf_counter() - start_time
            except Exception as e:
                if not from_ray(e):
                    raise
                raise ScoreError(
                    f"the Ray job failed: {root_cause(e)}; the shards written so far are kept: "
                    "run the same command again to finish the output"
                ) from None
            session.close_in_background()  # while the output is counted
            return close_output(
                summary, output, options.format, layout.rows, inputs, stamps, written
            )


def _plan(bundle, inputs, output, options):
    """The job's layout (the output opened), the inputs' stamps, the shards still to score
    and the summary so far."""
    layout = prepare_output(bundle, inputs, output, options)
    stamps = input_stamps(inputs, known=True)  # from the listing the job was planned from
    pending, summary = pending_shards(layout, output, options.format)
    return layout, stamps, pending, summary


class ActorPool(NamedTuple):
    """How many scoring actors, what each reserves, and the Runtime options they load with."""

    size: int
    resources: dict[str, float]
    runtime_options: dict[str, Any]


def actor_pool(
    actors: int | None, batch_size: int, device: str, options: ScoreOptions
) -> ActorPool:
    """One actor per GPU, else per CPU of the cluster (or ``actors``), each taking its share
    of the CPUs for inference threads."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    size = actors or (gpus if gpus else cpus)
    actor_resources: dict[str, float] = {"num_cpus": min(1.0, cpus / size)}
    runtime_options = {
        "variant": options.variant,
        "batch_size": batch_size,
        "threads": max(1, cpus // size),
        "device": device,
    }
    if gpus:
        actor_resources["num_gpus"] = 1
        runtime_options["device"] = "cuda"
    return ActorPool(size, actor_resources, runtime_options)


def start_scorers(shipped: ShippedBundle, pool: ActorPool, output: Location, options: ScoreOptions):
    """The pool's actors, loading the model (their first call waits for it). ``shipped``
    must outlive them: an actor started again after a crash fetches the model again."""
    import ray

    remote = ray.remote(ShardScorer).options(
        max_restarts=RESTARTS, max_task_retries=RESTARTS, **pool.resources
    )
    return [
        remote.remote(shipped, pool.runtime_options, output.uri, options) for _ in range(pool.size)
    ]


class Runs:
    """The pending shards cut into one run of consecutive shards per actor. An actor takes
    the next shard of its run, so it reads its inputs on from where its last shard ended; one
    whose run is done takes over the second half of the longest run left."""

    def __init__(self, shards: list[Shard], actors: int) -> None:
        size = -(-len(shards) // actors) if shards else 0
        self.runs = [collections.deque(shards[i * size : (i + 1) * size]) for i in range(actors)]

    def next(self, actor: int) -> Shard | None:
        run = self.runs[actor]
        if not run:
            longest = max(self.runs, key=len)
            keep = len(longest) // 2  # its owner keeps the first half
            while len(longest) > keep:
                run.appendleft(longest.pop())
        return run.popleft() if run else None


def _run(scorers, uris, offsets, pending: list[Shard], committed) -> None:
    """Hand the pending shards to the actors (a run of consecutive shards each, see
    :class:`Runs`), each kept ``IN_FLIGHT`` deep, until all are committed; ``committed(shard,
    written)`` after each. The actors end with it."""
    import ray

    for idle in scorers[len(pending) :]:  # started before the work was known
        ray.kill(idle)
    scorers = scorers[: len(pending)]
    runs = Runs(pending, len(scorers))
    running: dict[Any, tuple[int, Shard]] = {}  # task -> the actor's number, its shard

    def submit(actor: int) -> None:
        shard = runs.next(actor)
        if shard is None:
            return
        used = {s.input for s in shard.segments}
        inputs, firsts = {i: uris[i] for i in used}, {i: offsets[i] for i in used}
        running[scorers[actor].score.remote(inputs, firsts, shard)] = actor, shard

    try:
        for _ in range(IN_FLIGHT):
            for actor in range(len(scorers)):
                submit(actor)
        while running:
            [task], _ = ray.wait(list(running), num_returns=1)
            actor, shard = running.pop(task)
            committed(shard, ray.get(task))
            submit(actor)
    finally:
        for scorer in scorers:
            ray.kill(scorer)
