"""``critic score``: score a corpus, exactly once, in bounded memory.

Inputs and the output folder are local paths or storage URIs (``s3://...``; see
:mod:`critic.storage`). The inputs, one after the other, are cut into shards of
``shard_rows`` rows (shard k = rows k*S .. (k+1)*S-1 across all inputs), so a corpus of many
small files gives few shards of full size, and a shard may span several inputs (its
segments: which rows of which input; the manifest lists them). A shard's output becomes
visible only complete, under
its final name: on a local disk it is written to a temporary name, fsynced and renamed; on an
object store it is uploaded in one piece, and the store publishes it when the upload
completes. A manifest written before the first shard pins the model, the inputs (sha256, or
on S3 the store's ETag) and
the options; re-running the same command skips the shards that exist, so after a crash (even
``kill -9``) the output holds exactly the rows of an uninterrupted run. A changed model,
input or option is refused rather than mixed into old output. At the end the rows committed
are counted and compared with the rows the inputs hold: any difference is an error.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from critic.bundle import BASE_VARIANT, Bundle
from critic.data.readers import (
    Batch,
    CorpusError,
    Start,
    acl_imdb_files,
    batch_starts,
    check_columns,
    folder_inputs,
    input_format,
    is_utf8,
    iter_batches,
)
from critic.storage import Location, StorageError, expand, is_uri, location, stamps_relisted

from .lease import OutputLease

JOB_MANIFEST = "_manifest.json"
MANIFEST_VERSION = 2  # 1: a shard per input file and number (part-IIIII-SSSSSS)
SUMMARY = "_summary.json"
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
SHARD_ROWS = 20_000
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
# probabilities: only for a bundle with k > 2 labels (each class's, in label order)
OUTPUT_COLUMNS = ("id", "probability", "label", "probabilities", "error")
KEPT = "kept:"  # prefix of a kept column inside a shard, apart from critic's own columns


# A store's object up to this size is planned with others at once (see _scan_small_objects).
SMALL_OBJECT = 8 << 20


class ScoreError(ValueError):
    """A scoring job that cannot start (or continue) as asked."""


@dataclass
class ScoreOptions:
    text_column: str = "text"
    id_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    format: str = "parquet"
    shard_rows: int = SHARD_ROWS
    variant: str = BASE_VARIANT

    def validate(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise ScoreError(f"--format must be one of {OUTPUT_FORMATS}, got {self.format!r}")
        if self.shard_rows < 1:
            raise ScoreError(f"--shard-rows must be >= 1, got {self.shard_rows}")
        pairs = self.kept()
        outputs = [out for _, out in pairs]
        if any(not name for pair in pairs for name in pair):
            raise ScoreError("--keep-columns takes NAME or NAME:NEW_NAME, with no empty name")
        reserved = set(OUTPUT_COLUMNS) & set(outputs)
        if reserved:
            raise ScoreError(
                f"--keep-columns {sorted(reserved)} would clash with the output's own columns; "
                "keep them under another name: --keep-columns NAME:NEW_NAME"
            )
        doubled = sorted({name for name in outputs if outputs.count(name) > 1})
        if doubled:
            raise ScoreError(f"--keep-columns names the output column(s) {doubled} twice")

    def kept(self) -> list[tuple[str, str]]:
        """(input column, output column) of each --keep-columns entry: ``NAME`` keeps a
        column as it is, ``NAME:NEW_NAME`` (split at the last colon) renames it."""
        pairs = []
        for spec in self.keep_columns:
            source, _, out = spec.rpartition(":") if ":" in spec else (spec, "", spec)
            pairs.append((source, out))
        return pairs

    def source_columns(self) -> tuple[str, ...]:
        """The input columns --keep-columns reads, each once."""
        return tuple(dict.fromkeys(source for source, _ in self.kept()))


@dataclass
class Summary:
    rows: int = 0
    errors: int = 0
    shards: int = 0
    skipped_shards: int = 0
    scored_rows: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    output: str = ""
    files: list[str] = field(default_factory=list)
    # Digests of every input's and every shard's size and modification time when the job
    # finished: a re-run that finds them all unchanged (and the same model and options) has
    # nothing to do (see finished_job)
    inputs_stamp: str = ""
    shards_stamp: str = ""

    def line(self) -> str:
        text = (
            f"{count_noun(self.rows, 'row')} ({self.errors} with errors) in "
            f"{count_noun(self.shards, 'shard')} -> {self.output}; scored "
            f"{count_noun(self.scored_rows, 'row')} in {self.seconds:.1f}s "
            f"({self.rows_per_second:.0f} rows/s)"
        )
        if self.skipped_shards:
            verb = "was" if self.skipped_shards == 1 else "were"
            text += f"; {count_noun(self.skipped_shards, 'shard')} {verb} already done"
        return text


def count_noun(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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


def _joined(batches: list[Batch]) -> Batch:
    """Batches of Python cells (text formats) as one, rows in order."""
    if len(batches) == 1:
        return batches[0]
    texts: list = []
    ids: list | None = [] if batches[0].ids is not None else None
    columns: dict[str, list] = {name: [] for name in batches[0].columns}
    errors: dict[int, str] = {}
    for batch in batches:
        errors.update({len(texts) + row: why for row, why in batch.errors.items()})
        texts.extend(batch.texts)
        if ids is not None:
            ids.extend(batch.ids)
        for name, values in batch.columns.items():
            columns[name].extend(values)
    return Batch(batches[0].start, texts, ids, columns, errors)


class Cursors:
    """Open readers of inputs, each where the segment it last read ended. A segment that
    starts there is read on, so a Parquet row group holding several shards is decoded once,
    not again from its first row for every shard that starts inside it (for a file written
    as one row group, that made reading it quadratic). Keeps the ``size`` last used."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        # input -> (its batches, the row the next one starts at, their size)
        self._open: collections.OrderedDict[str, tuple[Iterator[Batch], int, int]] = (
            collections.OrderedDict()
        )

    def read(self, source: str | Location, segment: Segment, options) -> Batch | None:
        """The segment's rows of ``source`` (None when the input ends before them)."""
        key = str(source)
        batches, at, size = self._open.pop(key, (None, -1, 0))
        # Within an input only its first segment (starting mid-shard) and its last one are
        # short; a reader of whole shards yields the last one as it is.
        if batches is None or at != segment.start.row or segment.rows > size:
            if batches is not None:
                batches.close()
            batches, size = (
                iter_batches(
                    source,
                    segment.rows,
                    options.text_column,
                    options.id_column,
                    options.source_columns(),
                    start=segment.start,
                ),
                segment.rows,
            )
        batch = next(batches, None)
        if batch is None:
            batches.close()
            return None
        self._open[key] = (batches, segment.start.row + len(batch), size)
        while len(self._open) > self.size:
            _, (oldest, _, _) = self._open.popitem(last=False)
            oldest.close()
        return batch

    def close(self) -> None:
        for batches, _, _ in self._open.values():
            batches.close()
        self._open.clear()


def read_shard_input(
    inputs: dict[int, str | Location],
    offsets: dict[int, int],
    shard: Shard,
    options,
    cursors: Cursors | None = None,
):
    """One shard's rows ready for a scorer (:func:`shard_input` of each segment, joined):
    ``inputs`` and ``offsets`` map at least the shard's input numbers to the input and its
    first row across all inputs. ``cursors``: readers kept from the previous shards (a job
    reading its shards in order), else each segment is read afresh."""
    import pyarrow as pa

    own = cursors is None
    cursors = Cursors() if own else cursors

    def read(segment: Segment, readers: Cursors) -> tuple[int, Batch]:
        batch = readers.read(inputs[segment.input], segment, options)
        if batch is None or len(batch) != segment.rows:
            raise MissingRows(
                f"{inputs[segment.input]} changed while the job read it ({segment.rows} "
                f"rows expected from row {segment.start.row}, {len(batch or [])} read); "
                "score it again into a new --output"
            )
        return offsets[segment.input] + batch.start, batch

    def whole(segment: Segment) -> tuple[int, Batch]:
        readers = Cursors(1)
        try:
            return read(segment, readers)
        finally:
            readers.close()

    # The segments between a shard's first and last are whole inputs: on a store, many
    # small objects are read 16 at a time (each is a round trip or two), not in turn.
    middle = list(shard.segments[1:-1])
    on_store = len(middle) > 1 and is_uri(inputs[middle[0].input])
    try:
        if on_store:
            batches = [read(shard.segments[0], cursors)]
            batches += each(whole, middle, local=False)
            batches.append(read(shard.segments[-1], cursors))
        else:
            batches = [read(segment, cursors) for segment in shard.segments]
    finally:
        if own:
            cursors.close()
    if all(isinstance(b.texts, list) for _, b in batches):
        # Text formats: one batch of all the segments' rows (consecutive across the inputs,
        # so a row's position is still the first one's plus its index), converted at once.
        return shard_input(_joined([b for _, b in batches]), batches[0][0], options)
    tables = [shard_input(batch, position, options) for position, batch in batches]
    if len(tables) == 1:
        return tables[0]
    try:  # one chunk per column: a shard of many small inputs scores and writes faster
        return pa.concat_tables(tables, promote_options="permissive").combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        names = ", ".join(str(inputs[s.input]) for s in shard.segments)
        raise ScoreError(
            f"the inputs {names} share shard {shard.number} but their columns do not match "
            f"({e}); give the kept columns one type in every input"
        ) from None


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


def fingerprint(
    path: Location, by_tag: bool | None = None, sha256: str | None = None
) -> dict[str, Any]:
    """Identity of an input: its size, and the sha256 of its content, or on S3 the ETag the
    store keeps (no read: a corpus of hundreds of GB is not hashed by one process); for an
    aclImdb folder, a digest of every review file's. ``by_tag`` forces either; ``sha256``:
    the file's, taken by the read that cut it into shards."""
    tagged = path.on_s3 if by_tag is None else by_tag
    key = "etag" if tagged else "sha256"
    if sha256 is not None and not tagged:
        return {"path": path.uri, "bytes": path.size(), key: sha256}

    def content(p: Location) -> str:
        return p.etag() if tagged else p.sha256()

    if path.is_dir():
        digest, size = hashlib.sha256(), 0
        for p in acl_imdb_files(path):
            digest.update(p.relative_to(path).encode() + b"\0")
            digest.update(content(p).encode())
            size += p.size()
        return {"path": path.uri, "bytes": size, key: digest.hexdigest()}
    return {"path": path.uri, "bytes": path.size(), key: content(path)}


def _same_content(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two manifests' entries for one input name the same content: by the identity
    both have, or (an output begun when S3 inputs were still hashed) by hashing it now."""
    for key in ("sha256", "etag"):
        if key in old and key in new:
            return old[key] == new[key]
    if "sha256" in old:
        return old["sha256"] == fingerprint(location(new["path"]), by_tag=False)["sha256"]
    return False


def each(function, items: list, local: bool) -> list:
    """``[function(item) for item in items]``; on an object store (not ``local``) 16 at a
    time, since each is a round trip of a few ms to tens of ms."""
    if local or len(items) < 2:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="critic-ask") as pool:
        return list(pool.map(function, items))


def input_stamps(inputs: list[Location], known: bool = False) -> list:
    """Every input file's stamp (size and modification time, on S3 size and ETag; cheap:
    metadata only), to tell at the end of a job whether an input was rewritten while it ran.
    ``known``: what the listing that found an S3 object said (no request), for the stamps
    a job starts from or a finished job is compared with; the end of a job asks afresh."""

    # Objects a listing found are stamped afresh by that listing again, not a HEAD each.
    again = {} if known else stamps_relisted([p for p in inputs if p.on_s3])

    def stamp(p: Location):
        if p.is_dir():  # an aclImdb folder, listed just now: its listing is fresh
            return [f.stamp(known=True) for f in acl_imdb_files(p)]
        return again[p.uri] if p.uri in again else p.stamp(known)

    return each(stamp, inputs, all(p.is_local for p in inputs))


def job_manifest(
    bundle: Bundle, inputs: list[Location], options: ScoreOptions, layout: Layout
) -> dict[str, Any]:
    return {
        "critic_score": MANIFEST_VERSION,
        "model": {
            "path": str(Path(bundle.path).resolve()),
            "manifest_sha256": bundle.meta["manifest_sha256"],
            "variant": options.variant,
        },
        "inputs": [
            {**fingerprint(p, sha256=layout.digests.get(k)), "rows": rows}
            for k, (p, rows) in enumerate(zip(inputs, layout.input_rows(), strict=True))
        ],
        "options": _options_doc(options),
        "shards": layout.describe(inputs, options.format),
    }


def _options_doc(options: ScoreOptions) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()}


def shard_stamps(output: Location, files: list[str]) -> list:
    """Each committed shard's stamp (metadata only); on S3 from one listing of the output
    (1,000 shards per request), not a HEAD each."""
    if output.on_s3:
        found = output.files(recursive=False)
        told = {f.name: f.listed.stamp for f in found if f.listed is not None}
        return [told.get(name, (0, 0)) for name in files]
    return each(lambda name: (output / name).stamp(), files, output.is_local)


def stamps_digest(stamps: list) -> str:
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()


def finished_job(
    bundle: Bundle, inputs: list[Location], output: Location, options: ScoreOptions
) -> Summary | None:
    """The summary of ``output`` when this very job already finished there: the same model,
    options and input paths, every input's size and modification time as when it finished,
    and every shard it wrote still there. None otherwise (the job then runs, and checks
    the inputs' content). Metadata only: no input is read or hashed."""
    try:
        done = json.loads((output / SUMMARY).read_text())
        manifest = json.loads((output / JOB_MANIFEST).read_text())
    except (OSError, StorageError, ValueError):
        return None
    if not (isinstance(done, dict) and isinstance(manifest, dict) and done.get("inputs_stamp")):
        return None
    same_job = (
        manifest.get("critic_score") == MANIFEST_VERSION
        and manifest.get("model", {}).get("manifest_sha256") == bundle.meta["manifest_sha256"]
        and manifest.get("model", {}).get("variant") == options.variant
        and manifest.get("options") == _options_doc(options)
        and [i.get("path") for i in manifest.get("inputs", [])] == [p.uri for p in inputs]
    )
    if not same_job or done["inputs_stamp"] != stamps_digest(input_stamps(inputs, known=True)):
        return None
    files = done.get("files", [])
    if committed_shards(output) != set(files):
        return None
    if done.get("shards_stamp") != stamps_digest(shard_stamps(output, files)):
        return None  # a shard rewritten since: the full run counts its rows again
    known = {f for f in Summary.__dataclass_fields__ if f in done}
    summary = Summary(**{k: done[k] for k in known})
    summary.skipped_shards, summary.scored_rows = summary.shards, 0
    summary.seconds = summary.rows_per_second = 0.0
    return summary


def open_output(output: Location, manifest: dict[str, Any]) -> None:
    """Create the output folder with its manifest, or check an existing one matches."""
    output.make_dirs()
    path = output / JOB_MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ScoreError(f"{path}: damaged ({e}); use a new --output") from None
        if isinstance(old, dict) and old.get("critic_score") == 1:
            raise ScoreError(
                f"{output} was written by an earlier critic score (a shard per input file); "
                "its shards cannot be completed by this one: use a new --output"
            )
        if not isinstance(old, dict) or old.get("critic_score") != MANIFEST_VERSION:
            raise ScoreError(f"{path}: not a critic score manifest; use a new --output")
        changes = _differences(old, manifest)
        if changes and not committed_shards(output):
            # A job that stopped before its first shard (a typo in a column name, say)
            # left nothing to mix with: this job takes the folder over.
            path.write_atomic(manifest_bytes(manifest))
            return
        if changes:
            raise ScoreError(
                f"{output} holds output of a different job ({'; '.join(changes)}); "
                "refusing to mix them: use a new --output (or delete the old one)"
            )
        return
    if committed_shards(output):
        raise ScoreError(f"{output} has shard files but no {JOB_MANIFEST}; use an empty folder")
    path.write_atomic(manifest_bytes(manifest))


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The manifest as JSON: indented for a person to read, unless it lists many inputs
    (Python's JSON encoder is many times slower with an indent: 0.25 s at 5,000 inputs)."""
    indent = 2 if len(manifest["inputs"]) <= 100 else None
    return json.dumps(manifest, indent=indent).encode()


def committed_shards(output: Location) -> set[str]:
    """The names of the shards the output folder holds (each one complete)."""
    return {f.name for f in output.files(recursive=False) if f.name.startswith("part-")}


def _differences(old: dict, new: dict) -> list[str]:
    changes = []
    if old.get("model", {}).get("manifest_sha256") != new["model"]["manifest_sha256"]:
        changes.append("the model changed")
    if old.get("model", {}).get("variant") != new["model"]["variant"]:
        changes.append("the model variant changed")
    old_inputs, new_inputs = old.get("inputs", []), new["inputs"]
    if [i.get("path") for i in old_inputs] != [i["path"] for i in new_inputs]:
        changes.append("the inputs are different files")
    else:
        pairs = zip(old_inputs, new_inputs, strict=True)
        changed = [b["path"] for a, b in pairs if not _same_content(a, b)]
        if changed:
            changes.append(f"input content changed: {', '.join(changed)}")
    if old.get("options") != new["options"]:
        diff = sorted(
            k for k in new["options"] if old.get("options", {}).get(k) != new["options"][k]
        )
        changes.append(f"options changed: {', '.join(diff)}")
    return changes


def shard_name(shard: int, fmt: str) -> str:
    return f"part-{shard:06d}.{EXTENSIONS[fmt]}"


def score_corpus(
    runtime,
    inputs: list[Location],
    output: str | Path | Location,
    options: ScoreOptions,
    progress: bool | None = None,
) -> Summary:
    """Score every row of ``inputs`` into ``output`` (see the module docstring)."""
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
                path = output / shard_name(shard.number, options.format)
                write_shard(table, path, options.format)
                bar.update(shard.rows)
        finally:
            if ahead is not None and not ahead.cancel():
                ahead.exception()  # a read under way ends before its readers are closed
            cursors.close()
            bar.close()
    summary.seconds = time.perf_counter() - start_time
    return close_output(summary, output, options.format, layout.rows, inputs, stamps)


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


class MissingRows(ScoreError):
    """The output holds other than the rows the inputs hold (a shard lost or an input
    changed during the run): the job did not succeed."""


def close_output(
    summary: Summary,
    output: Location,
    fmt: str,
    expected: int,
    inputs: list[Location],
    stamps: list,
) -> Summary:
    """Check no input was rewritten since ``stamps`` (:func:`input_stamps` at the start),
    count what the output holds, check it is every row of the inputs, and write
    ``_summary.json`` (only then: a job without one did not finish). What a writer killed
    mid-shard left (its shard was scored again) is removed first."""
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
    summary.files = sorted(committed_shards(output))
    summary.rows, summary.errors = count_output(output, fmt, summary.files)
    summary.shards_stamp = stamps_digest(shard_stamps(output, summary.files))
    if summary.rows != expected:
        raise MissingRows(
            f"{output} holds {summary.rows} rows but the inputs hold {expected}: the output "
            "is incomplete; run the same command again to finish it"
        )
    (output / SUMMARY).write_atomic(json.dumps(asdict(summary), indent=2).encode())
    return summary


def shard_input(batch: Batch, position: int, options: ScoreOptions):
    """One shard ready for a scorer: ``text`` (valid text; empty where unreadable), ``_error``
    (why a row cannot be scored), ``id`` (text: the id column's value, else the row's
    position across the inputs) and the kept columns under their output names, prefixed with
    :data:`KEPT`. Both engines build shards here, so they write the same rows and the same
    error messages."""
    import pyarrow as pa

    errors = dict(batch.errors)
    if isinstance(batch.texts, list):
        texts = []
        for row, value in enumerate(batch.texts):
            text, error = (None, errors[row]) if row in errors else _as_text(value)
            texts.append(text or "")
            if error is not None:
                errors[row] = error
        text_array = pa.array(texts, type=pa.large_string())
    else:  # an Arrow string array (Parquet): only nulls can be bad
        for row in np.flatnonzero(batch.texts.is_null().to_numpy(zero_copy_only=False)):
            errors.setdefault(int(row), "text is null")
        text_array = batch.texts.fill_null("").cast(pa.large_string())
    if batch.ids is not None:
        ids = _string_column(batch.ids)
    else:
        ids = pa.array(np.arange(position, position + len(batch)).astype(str), type=pa.string())
    error_list = [errors.get(row) for row in range(len(batch))]
    columns = {"text": text_array, "_error": pa.array(error_list, type=pa.string()), "id": ids}
    for source, out in options.kept():
        columns[KEPT + out] = _string_column(batch.columns[source])
    return pa.table(columns)


def _string_column(values: Any):
    """A column of cells read from a text format as Arrow strings (one type per column:
    strings as they are, other JSON values as JSON); Arrow columns stay as they are."""
    import pyarrow as pa

    if not isinstance(values, list):
        return values
    return pa.array([_cell_text(v) for v in values], type=pa.string())


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is int:  # the common id, written as JSON writes it, without json's cost
        return str(value)
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if is_utf8(value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _as_text(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, str):
        return value, None
    if value is None:
        return None, "text is null"
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError as e:
            return None, f"text is not valid UTF-8 (byte {e.start})"
    return None, f"text is {type(value).__name__}, not a string"


def score_shard(runtime, shard):
    """The output table of one shard: id, probability, label, error, kept columns."""
    import pyarrow as pa

    probabilities, errors = runtime.score(shard.column("text").combine_chunks())
    for row, message in enumerate(shard.column("_error").to_pylist()):
        if message is not None:  # the reader's verdict comes first
            probabilities[row] = np.nan
            errors[row] = message
    failed = np.array([e is not None for e in errors], dtype=bool)
    scored = np.nan_to_num(probabilities)  # a failed row's NaN: any label, masked below
    labels = runtime.to_labels(scored).astype(object)
    labels[failed] = None
    kept = [c for c in shard.column_names if c.startswith(KEPT)]
    columns = {"id": shard.column("id")}
    if runtime.binary:  # P(labels[1]), as it always was
        columns["probability"] = pa.array(probabilities, mask=failed, type=pa.float32())
    else:  # the predicted class's probability, then every class's in label order
        top = runtime.top_probability(scored)
        columns["probability"] = pa.array(top, mask=failed, type=pa.float32())
    columns["label"] = pa.array(labels, type=pa.string())
    if not runtime.binary:
        columns["probabilities"] = _class_lists(probabilities, failed)
    columns["error"] = pa.array(errors, type=pa.string())
    columns.update({c.removeprefix(KEPT): shard.column(c) for c in kept})
    return pa.table(columns)


def _class_lists(probabilities: np.ndarray, failed: np.ndarray):
    """``list<float32>`` of each row's k class probabilities (null for a failed row)."""
    import pyarrow as pa

    n, k = probabilities.shape
    values = pa.array(np.ascontiguousarray(probabilities, dtype=np.float32).ravel())
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values, mask=pa.array(failed))


def shard_bytes(table, fmt: str) -> bytes:
    """One output shard, serialized in memory (so it is committed in one piece)."""
    import pyarrow as pa

    if fmt == "jsonl":
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist())
        return "".join(lines).encode("utf-8")
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(_lists_as_json(table), sink)
    return sink.getvalue().to_pybytes()


def _lists_as_json(table):
    """CSV has no lists: a list column (``probabilities``) is written as JSON text."""
    import pyarrow as pa

    for i, column in enumerate(table.schema):
        if pa.types.is_list(column.type):
            texts = [
                None if v is None else "[" + ", ".join(f"{x:.8g}" for x in v) + "]"
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, column.name, pa.array(texts, type=pa.string()))
    return table


def write_shard(table, path: Location, fmt: str) -> None:
    """Commit one shard: visible complete under its final name, or not at all."""
    path.write_atomic(shard_bytes(table, fmt))


def count_output(output: Location, fmt: str, shards: list[str]) -> tuple[int, int]:
    """Rows and rows with an error across the committed ``shards`` (file names)."""
    import pyarrow.compute as pc

    def count(name: str) -> tuple[int, int]:
        shard = output / name
        if fmt == "jsonl":
            lines = shard.read_text().splitlines()
            return len(lines), sum(json.loads(line)["error"] is not None for line in lines)
        if fmt == "parquet":  # the footer alone: rows, and the error column's nulls
            found = _parquet_counts(shard)
            if found is not None:
                return found
        column = read_shard_table(shard, fmt, ["error"]).column("error")
        return len(column), int(pc.sum(pc.is_valid(column)).as_py() or 0)

    counts = each(count, shards, output.is_local)
    return sum(rows for rows, _ in counts), sum(errors for _, errors in counts)


def _parquet_counts(shard: Location) -> tuple[int, int] | None:
    """A Parquet shard's rows and rows with an error from its footer (critic writes the
    error column's null counts), or None when the footer lacks them."""
    import pyarrow.parquet as pq

    meta = shard.retry(
        "reading its footer", lambda: pq.read_metadata(shard.path, filesystem=shard.fs)
    )
    leaves = [meta.schema.column(k).path for k in range(meta.num_columns)]
    if "error" not in leaves:
        return None
    column, errors = leaves.index("error"), 0
    for group in range(meta.num_row_groups):
        part = meta.row_group(group)
        stats = part.column(column).statistics
        if stats is None or not stats.has_null_count:
            return None
        errors += part.num_rows - stats.null_count
    return meta.num_rows, errors


def read_shard_table(shard: Location, fmt: str, columns: list[str] | None = None):
    """One committed shard (Parquet or CSV) as a table; on an object store the read is
    retried as a whole."""
    import pyarrow.dataset as ds

    return shard.retry(
        "reading it",
        lambda: ds.dataset(shard.path, format=fmt, filesystem=shard.fs).to_table(columns=columns),
    )


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
