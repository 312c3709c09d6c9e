"""``critic score --engine ray``: the same job on Ray Data.

read (one task per input file, one block per shard not yet committed)
-> ``map_batches`` with a callable class holding one Runtime per actor (an actor pool)
-> a datasink that commits each shard with the local engine's atomic write.

Shards, file names, manifest and output schema are the local engine's, so the guarantee is
the same: a re-run skips committed shards and ends with exactly the rows of one clean run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from critic.batches import iter_batches

from .score import (
    ScoreOptions,
    Summary,
    finish,
    prepare_output,
    score_shard,
    shard_input,
    shard_name,
    write_shard,
)

ROUTE = ("_input", "_shard", "_rows")  # where a block's rows belong; dropped before writing


def _shard_source(inputs: list[Path], offsets: list[int], options: ScoreOptions, done: set):
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def read_file(index: int):
        path = inputs[index]
        batches = iter_batches(
            path, options.shard_rows, options.text_column, options.id_column, options.keep_columns
        )
        for shard, batch in enumerate(batches):
            if (index, shard) in done:
                continue
            table = shard_input(batch, offsets[index] + batch.start)
            n = table.num_rows
            route = {"_input": [index] * n, "_shard": [shard] * n, "_rows": [n] * n}
            for name, values in route.items():
                table = table.append_column(name, pa.array(values, type=pa.int64()))
            yield table

    class ShardSource(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return sum(p.stat().st_size for p in inputs if p.is_file()) or None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [
                ReadTask(
                    lambda i=i: read_file(i),
                    BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None),
                )
                for i in range(len(inputs))
            ]

    return ShardSource()


class ScoreActor:
    """One Runtime per actor; scores whole shards (one block each)."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        from critic.serve import Runtime

        self.runtime = Runtime.load(model, **options)

    def __call__(self, block):
        route = {name: block.column(name) for name in ROUTE}
        out = score_shard(self.runtime, block.drop_columns(list(ROUTE)))
        for name, column in route.items():
            out = out.append_column(name, column)
        return out


def _shard_sink(output: Path, fmt: str):
    from ray.data.datasource import Datasink

    class ShardSink(Datasink):
        def write(self, blocks, ctx) -> int:
            import pyarrow.compute as pc

            written = 0
            for block in blocks:
                keys = block.select(["_input", "_shard"]).to_pylist()
                for key in sorted({(k["_input"], k["_shard"]) for k in keys}):
                    mask = pc.and_(
                        pc.equal(block.column("_input"), key[0]),
                        pc.equal(block.column("_shard"), key[1]),
                    )
                    part = block.filter(mask)
                    expected = part.column("_rows")[0].as_py()
                    if part.num_rows != expected:  # never commit part of a shard
                        raise RuntimeError(
                            f"shard {key} arrived split ({part.num_rows} of {expected} rows)"
                        )
                    path = output / shard_name(key[0], key[1], fmt)
                    write_shard(part.drop_columns(list(ROUTE)), path, fmt)
                    written += part.num_rows
            return written

    return ShardSink()


def score_corpus_ray(
    model: Path,
    runtime,
    inputs: list[Path],
    output: Path,
    options: ScoreOptions,
    *,
    actors: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
) -> Summary:
    """Score ``inputs`` on the connected Ray cluster (see the module docstring)."""
    import logging

    import ray
    from ray.data import ActorPoolStrategy

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # our summary says what matters

    output = Path(output)
    totals = prepare_output(runtime, inputs, output, options)
    offsets = [sum(totals[:i]) for i in range(len(inputs))]
    done, shards = set(), 0
    for index, total in enumerate(totals):
        count = -(-total // options.shard_rows)
        shards += count
        for shard in range(count):
            if (output / shard_name(index, shard, options.format)).is_file():
                done.add((index, shard))

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

    start = time.perf_counter()
    ds = ray.data.read_datasource(
        _shard_source(inputs, offsets, options, done),
        # One read task per input and no extra splitting: every block stays one whole shard.
        override_num_blocks=len(inputs),
        ray_remote_args={"num_cpus": 0.25},
    )
    scored = ds.map_batches(
        ScoreActor,
        fn_constructor_args=(str(Path(model).resolve()), runtime_options),
        batch_size=None,
        batch_format="pyarrow",
        zero_copy_batch=True,
        compute=ActorPoolStrategy(size=size),
        **actor_resources,
    )
    scored.write_datasink(_shard_sink(output, options.format), ray_remote_args={"num_cpus": 0.25})
    summary = Summary(output=str(output), shards=shards, skipped_shards=len(done))
    summary.seconds = time.perf_counter() - start
    summary.scored_rows = sum(totals) - sum(
        min(options.shard_rows, totals[i] - s * options.shard_rows) for i, s in done
    )
    return finish(summary, output, options.format)
