"""``critic score --engine ray``: the same job on Ray Data.

read (one task per shard not yet committed, seeking straight to the first row of each of its
segments, which may lie in several inputs)
-> ``map_batches`` with a callable class holding one Runtime per actor (an actor pool)
-> a datasink that commits each shard with the local engine's atomic write.

A block is always exactly one shard: each read task yields one, and blocks are never cut
(Ray Data would cut one bigger than its target block size, and merge the small ones). The
object store holds a few shards per actor, not a growing share of the corpus.

Shards, file names, manifest and output schema are the local engine's, so the guarantee is
the same: a re-run skips committed shards and ends with exactly the rows of one clean run.
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasink, Datasource, ReadTask

from critic.bundle import Bundle
from critic.cluster import connect_ray, from_ray, root_cause
from critic.data.readers import acl_imdb_files, input_format, parquet_file
from critic.storage import Location, location

from .lease import OutputLease
from .providers import DEFAULT_DEVICE
from .score import (
    Layout,
    ScoreError,
    ScoreOptions,
    Shard,
    Summary,
    check_job,
    close_output,
    finished_job,
    input_stamps,
    pending_shards,
    prepare_output,
    read_shard_input,
    score_shard,
    shard_name,
    write_shard,
)
from .shipping import ShippedBundle

ROUTE = ("_shard", "_rows")  # where a block's rows belong; dropped before writing
NEVER_CUT = 1 << 50  # a target block size no shard reaches
SHARDS_PER_ACTOR = 3  # read ahead: the one being scored, one queued, one being read
IO_TASK_PER_ACTORS = 4  # a shard reads or writes in a fraction of the time it takes to score


class Pending(NamedTuple):
    """A shard still to score, with about the memory its rows take."""

    shard: Shard
    bytes: int


def bytes_per_row(path: Location, rows: int) -> float:
    """About what a row of ``path`` takes in memory, text and the columns added to it."""
    if not rows:
        return 0.0
    fmt = input_format(path)
    if fmt == "acl_imdb":
        size = sum(p.size() for p in acl_imdb_files(path))
    elif fmt == "parquet":
        meta = parquet_file(path).metadata
        size = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    else:
        size = path.size()
    return size / rows + 64  # + Arrow offsets, the id, error and routing columns


class ShardSource(Datasource):
    """One read task per pending shard, each yielding the shard as one block (inputs as URIs
    or absolute paths, which mean the same on every node)."""

    def __init__(
        self, inputs: list[str], offsets: list[int], options: ScoreOptions, pending: list[Pending]
    ) -> None:
        self.inputs, self.offsets, self.options, self.pending = inputs, offsets, options, pending

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(p.bytes for p in self.pending) or None

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        # Each task carries its own shard's inputs only, not the whole plan.
        tasks = []
        for p in self.pending:
            used = {s.input for s in p.shard.segments}
            inputs = {i: self.inputs[i] for i in used}
            offsets = {i: self.offsets[i] for i in used}
            read = functools.partial(read_shard, inputs, offsets, p.shard, self.options)
            metadata = BlockMetadata(num_rows=p.shard.rows, size_bytes=p.bytes, exec_stats=None)
            tasks.append(ReadTask(read, metadata))
        return tasks


def read_shard(
    inputs: dict[int, str], offsets: dict[int, int], shard: Shard, options: ScoreOptions
) -> list[pa.Table]:
    """One pending shard (its segments' inputs and their first rows across all inputs given)
    as one block, with the columns that route it to its output shard."""
    table = read_shard_input(inputs, offsets, shard, options)
    n = table.num_rows
    for name, value in zip(ROUTE, (shard.number, n), strict=True):
        table = table.append_column(name, pa.array([value] * n, type=pa.int64()))
    pa.default_memory_pool().release_unused()  # the reader's buffers, ~6x the shard
    return [table]


class ScoreActor:
    """One Runtime per actor; scores whole shards (one block each)."""

    def __init__(self, shipped: ShippedBundle, options: dict[str, Any]) -> None:
        self.runtime = shipped.load(**options)

    def __call__(self, block: pa.Table) -> pa.Table:
        route = {name: block.column(name) for name in ROUTE}
        out = score_shard(self.runtime, block.drop_columns(list(ROUTE)))
        for name, column in route.items():
            out = out.append_column(name, column)
        pa.default_memory_pool().release_unused()
        return out


class ShardSink(Datasink):
    """Commits each shard of a block with the local engine's atomic write; never part of one."""

    def __init__(self, output: str, fmt: str) -> None:
        self.output, self.fmt = output, fmt

    def write(self, blocks, ctx) -> int:
        written = 0
        for block in blocks:
            for number in sorted(set(block.column("_shard").to_pylist())):
                part = block.filter(pc.equal(block.column("_shard"), number))
                expected = part.column("_rows")[0].as_py()
                if part.num_rows != expected:  # never commit part of a shard
                    raise RuntimeError(
                        f"shard {number} arrived split ({part.num_rows} of {expected} rows)"
                    )
                path = location(self.output) / shard_name(number, self.fmt)
                write_shard(part.drop_columns(list(ROUTE)), path, self.fmt)
                written += part.num_rows
        pa.default_memory_pool().release_unused()
        return written


@contextlib.contextmanager
def _data_context(object_store_bytes: int):
    """Ray Data settings for this job only: whole-shard blocks, a bounded read-ahead, and a
    quiet console (critic's summary says what matters; a failure ends in one line naming its
    cause; Ray Data's progress and tracebacks stay in its log in the Ray session folder)."""
    import logging

    from ray.data import DataContext, ExecutionResources

    ctx = DataContext.get_current()
    logger = logging.getLogger("ray.data")  # configured when ray.data is imported: set after
    saved = (
        ctx.target_max_block_size,
        ctx.execution_options.resource_limits,
        ctx.enable_progress_bars,
        logger.level,
    )
    ctx.target_max_block_size = NEVER_CUT
    ctx.execution_options.resource_limits = ExecutionResources.for_limits(
        object_store_memory=object_store_bytes
    )
    ctx.enable_progress_bars = False
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        (
            ctx.target_max_block_size,
            ctx.execution_options.resource_limits,
            ctx.enable_progress_bars,
            level,
        ) = saved
        logger.setLevel(level)


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
            bundle, inputs, output, options, actors, batch_size, device, num_cpus
        )


def _score_corpus_ray(
    bundle, inputs, output, options, actors, batch_size, device, num_cpus
) -> Summary:
    layout = prepare_output(bundle, inputs, output, options)
    stamps = input_stamps(inputs)
    pending, summary = plan_shards(inputs, layout, output, options)
    start_time = time.perf_counter()
    if pending:
        connect_ray(num_cpus)
        pool = actor_pool(actors, options, batch_size, device)
        try:
            _run(bundle, inputs, layout.offsets, pending, output, options, pool)
        except Exception as e:
            if not from_ray(e):
                raise
            raise ScoreError(
                f"the Ray job failed: {root_cause(e)}; the shards written so far are kept: run "
                "the same command again to finish the output"
            ) from None
    summary.seconds = time.perf_counter() - start_time
    return close_output(summary, output, options.format, layout.rows, inputs, stamps)


def plan_shards(
    inputs: list[Location], layout: Layout, output: Location, options: ScoreOptions
) -> tuple[list[Pending], Summary]:
    """The shards not yet committed (with their memory estimate), and the summary counting
    every shard."""
    shards, summary = pending_shards(layout, output, options.format)
    rows = layout.input_rows()
    row_bytes: dict[int, float] = {}
    pending = []
    for shard in shards:
        size = 0.0
        for s in shard.segments:
            if s.input not in row_bytes:
                row_bytes[s.input] = bytes_per_row(inputs[s.input], rows[s.input])
            size += s.rows * row_bytes[s.input]
        pending.append(Pending(shard, int(size)))
    return pending, summary


class ActorPool(NamedTuple):
    """How many scoring actors, what each reserves, and the Runtime options they load with."""

    size: int
    resources: dict[str, float]
    runtime_options: dict[str, Any]


def actor_pool(
    actors: int | None, options: ScoreOptions, batch_size: int, device: str
) -> ActorPool:
    """One actor per GPU, else per CPU of the cluster (or ``actors``)."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    size = actors or (gpus if gpus else max(1, cpus))
    # Fractional CPUs: 1-CPU actors on a small cluster leave no CPU for the read tasks
    # and the pipeline stalls ("backpressured: ResourceBudget").
    actor_resources: dict[str, float] = {"num_cpus": min(1.0, 0.5 * cpus / size)}
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


def _run(bundle, inputs, offsets, pending, output, options, pool: ActorPool) -> None:
    """read -> score on the actor pool -> commit, for the pending shards."""
    import ray
    from ray.data import ActorPoolStrategy

    largest = max(p.bytes for p in pending)
    io_tasks = max(1, pool.size // IO_TASK_PER_ACTORS)
    with _data_context(max(64 << 20, SHARDS_PER_ACTOR * (pool.size + 1) * largest)):
        ds = ray.data.read_datasource(
            ShardSource([p.uri for p in inputs], offsets, options, pending),
            override_num_blocks=len(pending),
            num_cpus=0.25,
            concurrency=io_tasks,
        )
        scored = ds.map_batches(
            ScoreActor,
            fn_constructor_args=(ShippedBundle(bundle), pool.runtime_options),
            batch_size=None,
            batch_format="pyarrow",
            zero_copy_batch=True,
            compute=ActorPoolStrategy(size=min(pool.size, len(pending))),  # none idle
            **pool.resources,
        )
        scored.write_datasink(
            ShardSink(output.uri, options.format),
            ray_remote_args={"num_cpus": 0.25},
            concurrency=io_tasks,
        )
