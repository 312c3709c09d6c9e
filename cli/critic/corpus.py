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
    fmt = fmt or detect_format(path)
    if fmt == "txt":
        with open(path, encoding="utf-8", newline="\n") as fh:
            return [line.rstrip("\r\n") for line in fh]
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise CorpusError("reading Parquet needs pyarrow: pip install 'critic[arrow]'") from e
        table = pq.read_table(path, columns=[text_column])
        return _checked(path, table.column(text_column).to_pylist(), text_column)
    if fmt in ("csv", "tsv"):
        csv.field_size_limit(sys.maxsize)
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise CorpusError(f"{path}: no column {text_column!r} (have {reader.fieldnames})")
            return _checked(path, (row[text_column] for row in reader), text_column)
    if fmt == "jsonl":
        values = []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{n}: invalid JSON ({e.msg})") from e
                if not isinstance(record, dict) or text_column not in record:
                    raise CorpusError(f"{path}:{n}: no field {text_column!r}")
                values.append(record[text_column])
        return _checked(path, values, text_column)
    raise CorpusError(f"unknown format {fmt!r}; expected one of {FORMATS}")


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
