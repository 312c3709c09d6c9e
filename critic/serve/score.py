"""``critic score``: score a corpus on disk, exactly once, in bounded memory.

Every input file is cut into shards of ``shard_rows`` rows (shard k = rows k*S .. (k+1)*S-1
of that file). A shard's output is written to a temporary name, fsynced and renamed: the
rename is the commit. A manifest written before the first shard pins the model, the inputs
(sha256) and the options; re-running the same command skips committed shards, so after a
crash (even ``kill -9``) the output holds exactly the rows of an uninterrupted run. A changed
model, input or option is refused rather than mixed into old output.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from critic.bundle import Bundle, sha256_file
from critic.data.readers import (
    Batch,
    CorpusError,
    acl_imdb_files,
    count_rows,
    input_format,
    is_utf8,
    iter_batches,
)

JOB_MANIFEST = "_manifest.json"
SUMMARY = "_summary.json"
OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
SHARD_ROWS = 20_000
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}


class ScoreError(ValueError):
    """A scoring job that cannot start (or continue) as asked."""


@dataclass
class ScoreOptions:
    text_column: str = "text"
    id_column: str | None = None
    keep_columns: tuple[str, ...] = ()
    format: str = "parquet"
    shard_rows: int = SHARD_ROWS
    variant: str = "fp32"

    def validate(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise ScoreError(f"--format must be one of {OUTPUT_FORMATS}, got {self.format!r}")
        if self.shard_rows < 1:
            raise ScoreError(f"--shard-rows must be >= 1, got {self.shard_rows}")
        reserved = {"id", "probability", "label", "error"} & set(self.keep_columns)
        if reserved:
            raise ScoreError(f"--keep-columns {sorted(reserved)} would clash with the output")


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

    def line(self) -> str:
        text = (
            f"{self.rows} rows ({self.errors} with errors) in {self.shards} shards -> "
            f"{self.output}; scored {self.scored_rows} rows in {self.seconds:.1f}s "
            f"({self.rows_per_second:.0f} rows/s)"
        )
        if self.skipped_shards:
            text += f"; {self.skipped_shards} shards were already done"
        return text


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Files and folders named by paths or globs, in a stable order, each once."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else []
        if glob.has_magic(pattern) and not matches:
            raise ScoreError(f"{pattern}: matches no file")
        for m in matches or [pattern]:
            path = Path(m)
            if not path.exists():
                raise ScoreError(f"{path}: no such file or folder")
            if path.resolve() not in {p.resolve() for p in found}:
                found.append(path)
    if not found:
        raise ScoreError("no input given")
    for path in found:
        try:
            input_format(path)
        except CorpusError as e:
            raise ScoreError(str(e)) from e
    return found


def fingerprint(path: Path) -> dict[str, Any]:
    """Identity of an input: size and sha256 (of every review file, for an aclImdb folder)."""
    if path.is_dir():
        digest, size = hashlib.sha256(), 0
        for p in acl_imdb_files(path):
            digest.update(p.relative_to(path).as_posix().encode() + b"\0")
            digest.update(sha256_file(p).encode())
            size += p.stat().st_size
        return {"path": str(path.resolve()), "bytes": size, "sha256": digest.hexdigest()}
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def job_manifest(bundle: Bundle, inputs: list[Path], options: ScoreOptions) -> dict[str, Any]:
    return {
        "critic_score": 1,
        "model": {
            "path": str(Path(bundle.path).resolve()),
            "manifest_sha256": bundle.meta["manifest_sha256"],
            "variant": options.variant,
        },
        "inputs": [fingerprint(p) for p in inputs],
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
    }


def open_output(output: Path, manifest: dict[str, Any]) -> None:
    """Create the output folder with its manifest, or check an existing one matches."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / JOB_MANIFEST
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changes = _differences(old, manifest)
        if changes:
            raise ScoreError(
                f"{output} holds output of a different job ({'; '.join(changes)}); "
                "refusing to mix them: use a new --output (or delete the old one)"
            )
        return
    if any(p.name.startswith("part-") for p in output.iterdir()):
        raise ScoreError(f"{output} has shard files but no {JOB_MANIFEST}; use an empty folder")
    _atomic_write(path, json.dumps(manifest, indent=2).encode())


def _differences(old: dict, new: dict) -> list[str]:
    changes = []
    if old.get("model", {}).get("manifest_sha256") != new["model"]["manifest_sha256"]:
        changes.append("the model changed")
    if old.get("model", {}).get("variant") != new["model"]["variant"]:
        changes.append("the model variant changed")
    old_inputs = [(i["path"], i["sha256"]) for i in old.get("inputs", [])]
    new_inputs = [(i["path"], i["sha256"]) for i in new["inputs"]]
    if [p for p, _ in old_inputs] != [p for p, _ in new_inputs]:
        changes.append("the inputs are different files")
    elif old_inputs != new_inputs:
        changed = [p for (p, a), (_, b) in zip(old_inputs, new_inputs, strict=True) if a != b]
        changes.append(f"input content changed: {', '.join(changed)}")
    if old.get("options") != new["options"]:
        diff = sorted(
            k for k in new["options"] if old.get("options", {}).get(k) != new["options"][k]
        )
        changes.append(f"options changed: {', '.join(diff)}")
    return changes


def shard_name(input_index: int, shard: int, fmt: str) -> str:
    return f"part-{input_index:05d}-{shard:06d}.{EXTENSIONS[fmt]}"


def score_corpus(
    runtime,
    inputs: list[Path],
    output: Path,
    options: ScoreOptions,
    progress: bool | None = None,
) -> Summary:
    """Score every row of ``inputs`` into ``output`` (see the module docstring)."""
    output = Path(output)
    prepare_output(runtime.bundle, inputs, output, options)
    bar = _progress_bar(sum(count_rows(p) for p in inputs), progress)
    summary = Summary(output=str(output))
    start_time = time.perf_counter()
    position = 0  # row number across all inputs (the id when no id column is given)
    try:
        for index, path in enumerate(inputs):
            batches = iter_batches(
                path,
                options.shard_rows,
                options.text_column,
                options.id_column,
                tuple(options.keep_columns),
            )
            for shard, batch in enumerate(batches):
                name = shard_name(index, shard, options.format)
                summary.shards += 1
                if (output / name).is_file():
                    summary.skipped_shards += 1
                else:
                    table = score_shard(runtime, shard_input(batch, position))
                    write_shard(table, output / name, options.format)
                    summary.scored_rows += len(batch)
                position += len(batch)
                bar.update(len(batch))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start_time
    return close_output(summary, output, options.format)


def prepare_output(bundle: Bundle, inputs: list[Path], output: Path, options: ScoreOptions) -> None:
    """Check the options and the variant, open (or re-open) the output folder."""
    options.validate()
    bundle.model_file(options.variant)  # a BundleError when the bundle lacks the variant
    open_output(output, job_manifest(bundle, inputs, options))
    _remove_leftovers(output)


def close_output(summary: Summary, output: Path, fmt: str) -> Summary:
    """Count what the output holds and write ``_summary.json``."""
    summary.rows_per_second = summary.scored_rows / summary.seconds if summary.seconds else 0.0
    summary.files = sorted(p.name for p in output.glob("part-*"))
    summary.rows, summary.errors = count_output(output, fmt)
    _atomic_write(output / SUMMARY, json.dumps(asdict(summary), indent=2).encode())
    return summary


def shard_input(batch: Batch, position: int):
    """One shard ready for a scorer: ``text`` (valid text; empty where unreadable), ``_error``
    (why a row cannot be scored), ``id`` and the kept columns. Both engines build shards
    here, so they write the same rows and the same error messages."""
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
        ids = pa.array(np.arange(position, position + len(batch), dtype=np.int64))
    error_list = [errors.get(row) for row in range(len(batch))]
    columns = {"text": text_array, "_error": pa.array(error_list, type=pa.string()), "id": ids}
    for name, values in batch.columns.items():
        columns[name] = _string_column(values)
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
    labels = runtime.to_labels(np.nan_to_num(probabilities)).astype(object)
    labels[failed] = None
    kept = [c for c in shard.column_names if c not in ("text", "_error", "id")]
    columns = {
        "id": shard.column("id"),
        "probability": pa.array(probabilities, mask=failed, type=pa.float32()),
        "label": pa.array(labels, type=pa.string()),
        "error": pa.array(errors, type=pa.string()),
        **{c: shard.column(c) for c in kept},
    }
    return pa.table(columns)


def write_shard(table, path: Path, fmt: str) -> None:
    """Write to a temporary name, fsync, rename (the commit), fsync the folder."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, tmp)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            for record in table.to_pylist():
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def count_output(output: Path, fmt: str) -> tuple[int, int]:
    """Rows and rows with an error across the committed shards."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    files = sorted(str(p) for p in output.glob("part-*"))
    if not files:
        return 0, 0
    if fmt == "jsonl":
        rows = errors = 0
        for f in files:
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    rows += 1
                    errors += json.loads(line)["error"] is not None
        return rows, errors
    table = ds.dataset(files, format=fmt).to_table(columns=["error"])
    return table.num_rows, int(pc.sum(pc.is_valid(table.column("error"))).as_py() or 0)


def _remove_leftovers(output: Path) -> None:
    """Temporary files of an interrupted run (never committed, so never counted)."""
    for p in output.glob(".tmp-part-*"):
        p.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _progress_bar(total: int, progress: bool | None):
    from tqdm import tqdm

    # progress=None: a bar only on a terminal.
    return tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        disable=None if progress is None else not progress,
    )
