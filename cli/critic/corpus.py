"""Read review texts from files: JSON Lines, CSV/TSV, Parquet or plain text.

TF-free and Ray-free: shared by the tokenizer tools, training and scoring.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from pathlib import Path

FORMATS = ("jsonl", "csv", "tsv", "parquet", "txt")


class CorpusError(ValueError):
    """A corpus file that cannot be read as asked (names the file and the row)."""


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    for fmt, exts in (
        ("jsonl", (".jsonl", ".ndjson", ".json")),
        ("csv", (".csv",)),
        ("tsv", (".tsv",)),
        ("parquet", (".parquet", ".pq")),
        ("txt", (".txt",)),
    ):
        if any(s in exts for s in suffixes):
            return fmt
    raise CorpusError(f"{path}: cannot tell the format from the name; pass one of {FORMATS}")


def read_texts(path: str | Path, text_column: str = "text", fmt: str | None = None) -> list[str]:
    """All texts of one file, in file order. Missing or non-text values raise CorpusError."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    if (fmt or detect_format(path)) == "txt":
        with open(path, encoding="utf-8", newline="\n") as fh:
            return [line.rstrip("\r\n") for line in fh]
    return read_columns(path, [text_column], fmt)[text_column]


def read_columns(path: str | Path, columns: list[str], fmt: str | None = None) -> dict[str, list]:
    """The named columns of a JSON Lines, CSV/TSV or Parquet file, in file order. The first
    column must hold text; a missing column or field is a CorpusError naming the row."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise CorpusError("reading Parquet needs pyarrow: pip install 'critic[arrow]'") from e
        names = pq.ParquetFile(path).schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise CorpusError(f"{path}: no column {missing[0]!r} (have {names})")
        table = pq.read_table(path, columns=columns)
        out = {c: table.column(c).to_pylist() for c in columns}
    elif fmt in ("csv", "tsv"):
        csv.field_size_limit(sys.maxsize)
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
            have = reader.fieldnames or []
            missing = [c for c in columns if c not in have]
            if missing:
                raise CorpusError(f"{path}: no column {missing[0]!r} (have {have})")
            out = {c: [] for c in columns}
            for row in reader:
                for c in columns:
                    out[c].append(row[c])
    elif fmt == "jsonl":
        out = {c: [] for c in columns}
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{n}: invalid JSON ({e.msg})") from e
                for c in columns:
                    if not isinstance(record, dict) or c not in record:
                        raise CorpusError(f"{path}:{n}: no field {c!r}")
                    out[c].append(record[c])
    else:
        raise CorpusError(f"format {fmt!r} has no columns; expected one of {FORMATS[:4]}")
    out[columns[0]] = _checked(path, out[columns[0]], columns[0])
    return out


def _checked(path: Path, values: Iterable[object], column: str) -> list[str]:
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise CorpusError(f"{path}: row {i} of {column!r} is {type(v).__name__}, not text")
        out.append(v)
    return out


def sample_path(split: str) -> Path:
    """The IMDB sample shipped with critic (1,000 reviews per split, JSON Lines)."""
    if split not in ("train", "test"):
        raise ValueError("split must be 'train' or 'test'")
    here = Path(__file__).resolve().parent
    # Installed wheel: critic/imdb_sample; editable install: the repository's data folder.
    for folder in (here / "imdb_sample", here.parent.parent / "data" / "imdb_sample"):
        if (folder / f"{split}.jsonl").is_file():
            return folder / f"{split}.jsonl"
    raise CorpusError("the shipped IMDB sample is missing from this installation")
