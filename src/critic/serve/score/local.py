"""``critic score`` in this process (the local engine): the shards in order, the next one read
while this one is scored."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from critic.storage import Location, location

from ..lease import OutputLease
from .job import check_job, close_output, pending_shards, prepare_output, progress_bar
from .manifest import finished_job, input_stamps
from .options import ScoreOptions, Summary, shard_name
from .shards import Cursors, read_shard_input, score_shard, write_shard


def score_corpus(
    runtime,
    inputs: list[Location],
    output: str | Path | Location,
    options: ScoreOptions,
    progress: bool | None = None,
) -> Summary:
    """Score every row of ``inputs`` into ``output`` (see :mod:`critic.serve.score`)."""
    inputs = [location(p) for p in inputs]
    output = location(output)
    check_job(runtime.bundle, inputs, options)
    with OutputLease(output):
        done = finished_job(runtime.bundle, inputs, output, options)
        return done or _score_corpus(runtime, inputs, output, options, progress)


def _score_corpus(runtime, inputs, output: Location, options: ScoreOptions, progress) -> Summary:
    layout = prepare_output(runtime.bundle, inputs, output, options)
    stamps = input_stamps(inputs, known=True)  # from the listing the job was planned from
    pending, summary = pending_shards(layout, output, options.format)
    bar = progress_bar(layout.rows, progress)
    bar.update(layout.rows - summary.scored_rows)  # committed by an earlier run: not read
    start_time = time.perf_counter()
    sources, offsets = dict(enumerate(inputs)), dict(enumerate(layout.offsets))
    cursors = Cursors()
    written = {}  # shard name -> Written

    def read(k: int):
        return read_shard_input(sources, offsets, pending[k], options, cursors)

    # The next shard is read while this one is scored: on object storage a shard's reads
    # are round trips the model need not wait for.
    ahead = None
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="critic-read") as reader:
        try:
            ahead = reader.submit(read, 0) if pending else None
            for k, shard in enumerate(pending):
                rows = ahead.result()
                ahead = reader.submit(read, k + 1) if k + 1 < len(pending) else None
                table = score_shard(runtime, rows)
                name = shard_name(shard.number, options.format)
                written[name] = write_shard(table, output / name, options.format)
                bar.update(shard.rows)
        finally:
            if ahead is not None and not ahead.cancel():
                ahead.exception()  # a read under way ends before its readers are closed
            cursors.close()
            bar.close()
    summary.seconds = time.perf_counter() - start_time
    return close_output(summary, output, options.format, layout.rows, inputs, stamps, written)
