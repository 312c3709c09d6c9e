"""A job's identity on its output: the manifest written before the first shard (the model,
the inputs' fingerprints, the options, the shards), the stamps that tell a finished job
from a changed one, and the check that refuses to mix two jobs in one output."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from critic.bundle import Bundle
from critic.data.readers import acl_imdb_files
from critic.storage import Location, StorageError, location, stamps_relisted

from .layout import Layout, each
from .options import ScoreError, ScoreOptions, Summary

JOB_MANIFEST = "_manifest.json"
MANIFEST_VERSION = 2  # 1: a shard per input file and number (part-IIIII-SSSSSS)
SUMMARY = "_summary.json"


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


def shard_stamps(
    output: Location, files: list[str], listing: dict[str, Location] | None = None
) -> list:
    """Each committed shard's stamp (metadata only); on S3 from one listing of the output
    (1,000 shards per request; ``listing``: :func:`listed_shards` made just now), not a
    HEAD each."""
    if output.on_s3:
        found = listed_shards(output) if listing is None else listing
        told = {name: f.listed.stamp for name, f in found.items() if f.listed is not None}
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
    listing = listed_shards(output)
    if set(listing) != set(files):
        return None
    if done.get("shards_stamp") != stamps_digest(shard_stamps(output, files, listing)):
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
    return set(listed_shards(output))


def listed_shards(output: Location) -> dict[str, Location]:
    """The shards the output folder holds, by name, each with what the listing said of it
    (its size; on S3 its ETag)."""
    return {f.name: f for f in output.files(recursive=False) if f.name.startswith("part-")}


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
