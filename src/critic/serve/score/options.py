"""What a scoring job is asked and what it tells: its options, its summary, its errors,
and the names of its output shards."""

from __future__ import annotations

from dataclasses import dataclass, field

from critic.bundle import BASE_VARIANT

OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
SHARD_ROWS = 20_000
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
# probabilities: only for a bundle with k > 2 labels (each class's, in label order)
OUTPUT_COLUMNS = ("id", "probability", "label", "probabilities", "error")
KEPT = "kept:"  # prefix of a kept column inside a shard, apart from critic's own columns


class ScoreError(ValueError):
    """A scoring job that cannot start (or continue) as asked."""


class MissingRows(ScoreError):
    """The output holds other than the rows the inputs hold (a shard lost or an input
    changed during the run): the job did not succeed."""


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


def shard_name(shard: int, fmt: str) -> str:
    return f"part-{shard:06d}.{EXTENSIONS[fmt]}"
