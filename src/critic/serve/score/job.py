"""A job's start and end, shared by both engines: its inputs found and checked, its output
opened (or re-opened) and planned, the shards still to score, and the final count that
must match the inputs before ``_summary.json`` is written."""

from __future__ import annotations

import json
from dataclasses import asdict

from critic.bundle import Bundle
from critic.data.readers import CorpusError, check_columns, folder_inputs, input_format
from critic.storage import Location, StorageError, expand

from .layout import Layout, Shard, plan_layout
from .manifest import (
    SUMMARY,
    committed_shards,
    input_stamps,
    job_manifest,
    listed_shards,
    open_output,
    shard_stamps,
    stamps_digest,
)
from .options import MissingRows, ScoreError, ScoreOptions, Summary, shard_name
from .shards import Written, count_output


def expand_inputs(patterns: list[str]) -> list[Location]:
    """Files and folders named by paths, URIs or globs, in a stable order, each once. An
    aclImdb folder is one input; any other folder stands for the files in it."""
    found: list[Location] = []
    seen: set[str] = set()
    for pattern in patterns:
        try:
            matches = expand(pattern)
        except StorageError as e:
            raise ScoreError(str(e)) from e
        if not matches:
            raise ScoreError(f"{pattern}: matches no file")
        for match in matches:
            match = match.looked_up()  # on a store: one request, not one per check
            if not match.exists():
                raise ScoreError(f"{match}: no such file or folder")
            try:
                paths = folder_inputs(match) if match.is_dir() else [match]
            except CorpusError as e:
                raise ScoreError(str(e)) from e
            for path in paths:
                if path.uri not in seen:
                    seen.add(path.uri)
                    found.append(path)
    if not found:
        raise ScoreError("no input given")
    for path in found:
        try:
            input_format(path)
        except CorpusError as e:
            raise ScoreError(str(e)) from e
    return found


def check_job(bundle: Bundle, inputs: list[Location], options: ScoreOptions) -> None:
    """Check the options, the variant and the inputs' columns, before the output exists."""
    options.validate()
    bundle.model_file(options.variant)  # a BundleError when the bundle lacks the variant
    for path in inputs:  # missing or unusable columns end here, before the output exists
        check_columns(path, options.text_column, options.id_column, options.source_columns())


def prepare_output(
    bundle: Bundle, inputs: list[Location], output: Location, options: ScoreOptions
) -> Layout:
    """Cut the inputs into shards, open (or re-open) the output folder the job holds the
    lease of, and clear what an interrupted run left half-written."""
    layout = plan_layout(inputs, options.shard_rows)
    open_output(output, job_manifest(bundle, inputs, options, layout))
    _remove_leftovers(output)
    return layout


def pending_shards(layout: Layout, output: Location, fmt: str) -> tuple[list[Shard], Summary]:
    """The shards of ``layout`` not yet committed in ``output``, and the summary counting
    every shard, the ones already done and the rows left to score (both engines)."""
    done = committed_shards(output)
    pending, summary = [], Summary(output=str(output))
    for shard in layout.shards:
        summary.shards += 1
        if shard_name(shard.number, fmt) in done:
            summary.skipped_shards += 1
        else:
            pending.append(shard)
            summary.scored_rows += shard.rows
    return pending, summary


def close_output(
    summary: Summary,
    output: Location,
    fmt: str,
    expected: int,
    inputs: list[Location],
    stamps: list,
    written: dict[str, Written],
) -> Summary:
    """Check no input was rewritten since ``stamps`` (:func:`input_stamps` at the start),
    count what the output holds, check it is every row of the inputs, and write
    ``_summary.json`` (only then: a job without one did not finish). A shard this run
    ``written`` (by name) is counted from what its writer knew when the listing shows it
    with the size it was written with; the others (committed by an earlier run) are read.
    What a writer killed mid-shard left (its shard was scored again) is removed first."""
    _remove_leftovers(output)
    changed = [
        str(path)
        for path, old, new in zip(inputs, stamps, input_stamps(inputs), strict=True)
        if old != new
    ]
    if changed:
        raise MissingRows(
            f"{', '.join(changed)} changed while the job read it: the output mixes two "
            "versions of the input; score it again into a new --output"
        )
    summary.rows_per_second = summary.scored_rows / summary.seconds if summary.seconds else 0.0
    summary.inputs_stamp = stamps_digest(stamps)
    listing = listed_shards(output)
    summary.files = sorted(listing)
    known = {
        name: (shard.rows, shard.errors)
        for name, shard in written.items()
        if name in listing and listing[name].size() == shard.size  # the listing's size
    }
    summary.rows, summary.errors = count_output(output, fmt, summary.files, known)
    summary.shards_stamp = stamps_digest(shard_stamps(output, summary.files, listing))
    if summary.rows != expected:
        raise MissingRows(
            f"{output} holds {summary.rows} rows but the inputs hold {expected}: the output "
            "is incomplete; run the same command again to finish it"
        )
    (output / SUMMARY).write_atomic(json.dumps(asdict(summary), indent=2).encode())
    return summary


def _remove_leftovers(output: Location) -> None:
    """Temporary files of an interrupted run on a local disk (never committed, so never
    counted; an object store keeps no partial object)."""
    if output.is_local:
        for p in output.local_path.glob(".tmp-*"):
            p.unlink(missing_ok=True)


def progress_bar(total: int, progress: bool | None):
    from tqdm import tqdm

    # progress=None: a bar only on a terminal.
    return tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        disable=None if progress is None else not progress,
    )
