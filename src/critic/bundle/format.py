"""critic model bundles: the on-disk format and its TF-free loader.

A bundle is a directory::

    model.onnx        the classifier (input ``tokens`` int32 [batch, maxlen], output
                      ``probabilities`` float32 [batch, 1] for two labels, P(labels[1]),
                      or [batch, k] for k > 2 labels, in their order)
    model.int8.onnx   optional dynamically quantized variant
    tokenizer.json    Keras Tokenizer JSON (or critic's ImdbIndex JSON for models trained on
                      Keras' imdb.npz ids) plus an ``encode`` section (mode, maxlen, padding)
    README.md         the model card
    bundle.json       format version, labels, metrics, parity numbers, versions, and the
                      size and sha256 of every other file; sealed by its own checksum

Loading checks every checksum and never runs code from the bundle (no pickle, no Keras).
The checksums make a bundle tamper-evident against accidents (truncated copies, flipped
bits, edited files); they are not a signature. Every file the loader uses is a checked entry
of ``files``: a plain name inside the folder, not a link, read once, hashed, and used from
those same bytes (so nothing can change between the check and the use; ONNX models are loaded
from memory, which also refuses ONNX external-data references).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from critic.classes import label_problem
from critic.storage import Location, cache_dir, is_uri, location

FORMAT = "critic-bundle"
FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "README.md")
ENCODE_MODES = ("keras_tokenizer", "keras_imdb_index")
# The model every bundle has; others (int8) are optional variants of it.
BASE_VARIANT = "fp32"
_SEAL = "manifest_sha256"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle that cannot be trusted or used; the message names the file and the problem."""


def sha256_file(path: str | Path) -> str:
    return location(path).sha256()


def _canonical(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def seal_manifest(doc: dict[str, Any]) -> bytes:
    """The bytes of ``bundle.json`` for ``doc``: canonical JSON carrying its own sha256."""
    body = {k: v for k, v in doc.items() if k != _SEAL}
    return _canonical({**body, _SEAL: hashlib.sha256(_canonical(body)).hexdigest()})


def file_entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


@dataclass(frozen=True)
class Bundle:
    """A checked bundle: its folder, its ``bundle.json`` metadata and the verified bytes of
    the files it uses (its ONNX models and tokenizer.json)."""

    path: Path
    meta: dict[str, Any]
    encode: dict[str, Any]
    source: str = ""  # where it was loaded from (a storage URI, or the local folder)
    blobs: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.meta["labels"])  # type: ignore[return-value]

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def maxlen(self) -> int:
        return int(self.encode["maxlen"])

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self.meta["models"])

    def model_file(self, variant: str = BASE_VARIANT) -> Path:
        """Where a variant's model is (for messages; run it from :meth:`model_bytes`)."""
        models = self.meta["models"]
        if variant not in models:
            raise BundleError(
                f"{self.path}: no {variant!r} model in this bundle (has {sorted(models)})"
            )
        return self.path / models[variant]["file"]

    def model_bytes(self, variant: str = BASE_VARIANT) -> bytes:
        """The checked bytes of a variant's ONNX model."""
        return self.blobs[self.model_file(variant).name]

    def window_bytes(self) -> bytes | None:
        """The checked bytes of the padding-skipping window model, if the bundle has one."""
        window = self.meta.get("window")
        return self.blobs[window["file"]] if window else None

    def tokenizer_json(self) -> str:
        """The bundle's tokenizer.json (its ``encode`` section says which kernel reads it)."""
        return self.blobs["tokenizer.json"].decode("utf-8")


def load_bundle(path: str | Path, cache: Path | None = None) -> Bundle:
    """Open a bundle (a folder, or a storage URI fetched into ``cache``) after checking its
    format version, the fields it is read by, and the size and sha256 of every file.

    Raises BundleError naming the file and what was expected for a missing, truncated,
    altered, malformed or unknown-version bundle.
    """
    source = location(path).uri  # what a worker on any node loads
    folder = fetch_bundle(path, cache) if is_uri(path) else Path(path)
    if not folder.is_dir():
        raise BundleError(f"{folder}: not a bundle directory")
    manifest = folder / BUNDLE_FILE
    if not manifest.is_file():
        raise BundleError(f"{folder}: incomplete bundle, {BUNDLE_FILE} is missing")
    raw = manifest.read_bytes()
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{manifest}: not valid JSON ({e}); the bundle is damaged") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{manifest}: not a critic bundle (format is not {FORMAT!r})")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        hint = " (newer than this critic: upgrade critic)" if _newer(version) else ""
        raise BundleError(
            f"{manifest}: unsupported bundle format version {version!r}{hint}; "
            f"this critic reads version {FORMAT_VERSION}"
        )
    if seal_manifest(doc) != raw:
        raise BundleError(
            f"{manifest}: does not match its own checksum ({_SEAL}); it was edited or damaged "
            "after export"
        )
    used = check_fields(doc, manifest)
    blobs = {}
    for name, entry in sorted(doc["files"].items()):
        data = _checked_bytes(folder, name, entry)
        if name in used:
            blobs[name] = data
    encode = _read_encode(folder / "tokenizer.json", blobs["tokenizer.json"], doc)
    return Bundle(folder, doc, encode, source, blobs)


def check_fields(doc: dict[str, Any], manifest: Path) -> set[str]:
    """Check the fields of a sealed ``bundle.json`` the loader reads (a re-sealed bundle can
    hold anything); returns the names of the files it uses. BundleError names the field."""

    def fail(where: str, what: str, value: Any) -> BundleError:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return BundleError(f"{manifest}: {where} {what}, got {shown}")

    files = doc.get("files")
    if not isinstance(files, dict):
        raise fail("'files'", "must be a table of file name -> {bytes, sha256}", files)
    for name, entry in files.items():
        _check_name(manifest, name)
        if not (
            isinstance(entry, dict)
            and _is_int(entry.get("bytes"))
            and entry["bytes"] >= 0
            and isinstance(entry.get("sha256"), str)
            and _SHA256.fullmatch(entry["sha256"])
        ):
            raise fail(f"files.{name}", "must be {bytes: int, sha256: hex}", entry)
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"{manifest}: lists no checksum for required file {name}")
    labels = doc.get("labels")
    problem = label_problem(labels) if isinstance(labels, list) else "must be a list"
    if problem:
        raise fail("labels", f"{problem} (two: [negative, positive]; k > 2: the classes)", labels)
    threshold = doc.get("threshold")
    if not (isinstance(threshold, (int, float)) and not isinstance(threshold, bool)) or not (
        0.0 <= threshold <= 1.0
    ):
        raise fail("threshold", "must be a number in [0, 1]", threshold)
    model = doc.get("model")
    if not isinstance(model, dict):
        raise fail("model", "must be a table", model)
    if not (_is_int(model.get("maxlen")) and model["maxlen"] >= 1):
        raise fail("model.maxlen", "must be an integer >= 1", model.get("maxlen"))
    if not isinstance(model.get("input"), str):
        raise fail("model.input", "must be the model's input name", model.get("input"))
    models = doc.get("models")
    if not isinstance(models, dict) or BASE_VARIANT not in models:
        raise fail("models", "must be a table of variants with 'fp32'", models)
    used = {"tokenizer.json"}
    tables = {f"models.{variant}": entry for variant, entry in models.items()}
    if "window" in doc:
        tables["window"] = doc["window"]
    for where, entry in tables.items():
        name = entry.get("file") if isinstance(entry, dict) else None
        if name not in files or not str(name).endswith(".onnx"):
            raise fail(f"{where}.file", "must name a checked .onnx entry of 'files'", name)
        used.add(name)
    return used


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fetch_bundle(uri: str | Path, cache: Path | None = None) -> Path:
    """A local copy of the bundle at a storage URI, in critic's cache under its seal (fetched
    once per bundle version; :func:`load_bundle` then checks every file as for any bundle)."""
    remote = location(uri)
    manifest = remote / BUNDLE_FILE
    try:
        raw = manifest.read_bytes()
    except OSError as e:
        raise BundleError(f"{manifest}: cannot read the bundle's {BUNDLE_FILE} ({e})") from e

    def read(name: str) -> bytes:
        try:
            return (remote / name).read_bytes()
        except OSError as e:
            raise BundleError(f"{remote / name}: cannot fetch ({e})") from e

    return _install(manifest, raw, read, cache)


def bundle_files(folder: str | Path) -> dict[str, bytes]:
    """Every file of a local bundle folder (``bundle.json`` and its ``files``), to ship to a
    machine that cannot read the folder (see :func:`unpack_bundle`)."""
    folder = Path(folder)
    raw = (folder / BUNDLE_FILE).read_bytes()
    files, _ = _sealed_files(folder / BUNDLE_FILE, raw)
    for name in files:
        _check_name(folder / BUNDLE_FILE, name)
    return {BUNDLE_FILE: raw, **{name: (folder / name).read_bytes() for name in files}}


def unpack_bundle(files: dict[str, bytes], cache: Path | None = None) -> Path:
    """The bundle shipped as :func:`bundle_files`, installed in critic's cache under its seal
    (:func:`load_bundle` then checks every file as for any bundle)."""
    manifest = Path(BUNDLE_FILE)

    def read(name: str) -> bytes:
        if name not in files:
            raise BundleError(f"{name}: missing from the shipped bundle")
        return files[name]

    return _install(manifest, read(BUNDLE_FILE), read, cache)


def _sealed_files(manifest: Path | Location, raw: bytes) -> tuple[dict[str, Any], str]:
    """A sealed bundle.json's ``files`` and its seal."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{manifest}: cannot read the bundle's {BUNDLE_FILE} ({e})") from e
    files = doc.get("files") if isinstance(doc, dict) else None
    seal = doc.get(_SEAL) if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not isinstance(seal, str) or not seal.isalnum():
        raise BundleError(f"{manifest}: not a sealed critic bundle")
    return files, seal


def _install(manifest: Path | Location, raw: bytes, read, cache: Path | None) -> Path:
    """Write a bundle's files (``read(name)`` gives each) into the cache under its seal, once."""
    files, seal = _sealed_files(manifest, raw)
    dest = Path(cache or cache_dir()) / "bundles" / seal[:32]
    if (dest / BUNDLE_FILE).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetching-", dir=dest.parent))
    try:
        for name in files:
            _check_name(manifest, name)
            (tmp / name).write_bytes(read(name))
        (tmp / BUNDLE_FILE).write_bytes(raw)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process installed it first
            if not (dest / BUNDLE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _newer(version: Any) -> bool:
    return isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION


def _check_name(manifest: Path | Location, name: Any) -> None:
    """A ``files`` entry must name a plain file of the bundle folder (not bundle.json)."""
    plain = isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name
    if not plain or name == BUNDLE_FILE:
        raise BundleError(f"{manifest}: invalid file name {name!r} in 'files'")


def _checked_bytes(folder: Path, name: str, entry: dict[str, Any]) -> bytes:
    """A ``files`` entry's bytes, read once and checked against its size and sha256."""
    target = folder / name
    if target.is_symlink():
        raise BundleError(f"{target}: is a link; a bundle holds its own files")
    if not target.is_file():
        raise BundleError(f"{folder}: incomplete bundle, {name} is missing")
    size = target.stat().st_size
    if size != entry["bytes"]:
        raise BundleError(
            f"{target}: expected {entry['bytes']} bytes, found {size} (truncated or replaced)"
        )
    data = target.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != entry["bytes"] or digest != entry["sha256"]:
        raise BundleError(
            f"{target}: sha256 {digest} does not match the expected {entry['sha256']} "
            "(the file was altered)"
        )
    return data


def _read_encode(path: Path, data: bytes, doc: dict[str, Any]) -> dict[str, Any]:
    try:
        encode = json.loads(data.decode("utf-8"))["encode"]
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: no valid 'encode' section ({e})") from e
    if not isinstance(encode, dict):
        raise BundleError(f"{path}: 'encode' must be a table, got {type(encode).__name__}")
    if encode.get("mode") not in ENCODE_MODES:
        raise BundleError(
            f"{path}: unknown encode mode {encode.get('mode')!r}; known {ENCODE_MODES}"
        )
    for key in ("padding", "truncating"):
        if encode.get(key) not in ("pre", "post"):
            raise BundleError(f"{path}: {key} must be 'pre' or 'post', got {encode.get(key)!r}")
    if encode.get("maxlen") != doc.get("model", {}).get("maxlen"):
        raise BundleError(
            f"{path}: maxlen {encode.get('maxlen')!r} differs from the model's "
            f"{doc.get('model', {}).get('maxlen')!r}"
        )
    return encode
