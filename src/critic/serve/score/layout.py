"""How a job cuts its inputs, one after the other, into shards of ``shard_rows`` rows: each
shard's segments (which rows of which input), planned from one scan of each text input or
from Parquet footers."""

from __future__ import annotations

import concurrent.futures
import hashlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from critic.data.readers import Start, batch_starts, input_format
from critic.storage import Location

from .options import shard_name

# A store's object up to this size is planned with others at once (see _scan_small_objects).
SMALL_OBJECT = 8 << 20


class Segment(NamedTuple):
    """Rows ``start.row .. start.row + rows - 1`` of input number ``input``."""

    input: int
    start: Start
    rows: int


class Shard(NamedTuple):
    """Output shard ``number``: its segments, in order, and its rows."""

    number: int
    segments: tuple[Segment, ...]
    rows: int


@dataclass
class Layout:
    """How the inputs are cut into shards: each input's first row across all inputs, the
    shards in order, and the rows of all inputs."""

    offsets: list[int]
    shards: list[Shard]
    rows: int
    # sha256 of the text inputs on a local disk, by input number, taken as the layout scan
    # read them (a corpus of many small files is then opened once less per file)
    digests: dict[int, str] = field(default_factory=dict)

    def input_rows(self) -> list[int]:
        ends = [*self.offsets[1:], self.rows]
        return [end - start for start, end in zip(self.offsets, ends, strict=True)]

    def describe(self, inputs: list[Location], fmt: str) -> list[dict[str, Any]]:
        """The shards as the manifest lists them: name, rows, and per segment the input's
        path, its first row and its rows."""
        return [
            {
                "name": shard_name(shard.number, fmt),
                "rows": shard.rows,
                "inputs": [[inputs[s.input].uri, s.start.row, s.rows] for s in shard.segments],
            }
            for shard in self.shards
        ]


def plan_layout(inputs: list[Location], shard_rows: int) -> Layout:
    """Cut the inputs, one after the other, into shards of ``shard_rows`` rows (one scan of
    each text input, metadata for Parquet)."""
    offsets: list[int] = []
    segments: dict[int, list[Segment]] = {}
    digests: dict[int, str] = {}
    formats = [input_format(path) for path in inputs]
    early = _scan_small_objects(inputs, formats, shard_rows)
    position = 0
    for index, path in enumerate(inputs):
        fmt = formats[index]
        # This input starts (-position) % shard_rows rows before the next shard boundary.
        phase = (-position) % shard_rows
        if index in early and (phase == 0 or early[index][1] <= phase):
            # Scanned as if it began a shard: the same cuts, or no boundary inside it.
            starts, rows = early[index]
            starts = starts if phase == 0 else starts[:1]
        else:
            # A text input on a local disk is hashed as it is scanned: its fingerprint (on
            # S3 the ETag stands for it; Parquet is cut from its footer, not scanned).
            scanned = path.is_local and fmt not in ("parquet", "acl_imdb")
            digest = hashlib.sha256() if scanned else None
            starts, rows = batch_starts(path, shard_rows, fmt, phase=phase, digest=digest)
            if digest is not None:
                digests[index] = digest.hexdigest()
        ends = [s.row for s in starts[1:]] + [rows] if starts else []  # empty: no segment
        for start, end in zip(starts, ends, strict=True):
            number = (position + start.row) // shard_rows
            segments.setdefault(number, []).append(Segment(index, start, end - start.row))
        offsets.append(position)
        position += rows
    shards = [
        Shard(number, tuple(parts), sum(p.rows for p in parts))
        for number, parts in sorted(segments.items())
    ]
    return Layout(offsets, shards, position, digests)


def _scan_small_objects(
    inputs: list[Location], formats: list[str], shard_rows: int
) -> dict[int, tuple[list[Start], int]]:
    """The layout scans of the small objects on a store (listed at most SMALL_OBJECT bytes),
    16 at a time, each as if it began a shard: a scan is a round trip or two, and a corpus
    of many small objects was planned one after the other. The plan uses a scan as it is
    when the object does begin a shard or no shard boundary falls inside it (for files much
    smaller than a shard, nearly all of them), and scans the others again."""
    small = [
        k
        for k, path in enumerate(inputs)
        if not path.is_local
        and formats[k] != "acl_imdb"
        and path.listed is not None
        and path.listed.size <= SMALL_OBJECT
    ]
    if len(small) < 2:
        return {}
    scans = each(lambda k: batch_starts(inputs[k], shard_rows, formats[k]), small, local=False)
    return dict(zip(small, scans, strict=True))


def each(function, items: list, local: bool) -> list:
    """``[function(item) for item in items]``; on an object store (not ``local``) 16 at a
    time, since each is a round trip of a few ms to tens of ms."""
    if local or len(items) < 2:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="critic-ask") as pool:
        return list(pool.map(function, items))
