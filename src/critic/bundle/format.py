"""critic model bundles: the on-disk format and its TF-free loader.

A bundle is a directory::

    model.onnx        the classifier (input ``tokens`` int32 [batch, maxlen], output
                      ``probabilities`` float32 [batch, 1])
    model.int8.onnx   optional dynamically quantized variant
    tokenizer.json    Keras Tokenizer JSON (or critic's ImdbIndex JSON for models trained on
                      Keras' imdb.npz ids) plus an ``encode`` section (mode, maxlen, padding)
    README.md         the model card
    bundle.json       format version, labels, metrics, parity numbers, versions, and the
                      size and sha256 of every other file; sealed by its own checksum

Loading checks every checksum and never runs code from the bundle (no pickle, no Keras).
The checksums make a bundle tamper-evident against accidents (truncated copies, flipped
bits, edited files); they are not a signature.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from critic.storage import Location, cache_dir, is_uri, location

FORMAT = "critic-bundle"
FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "README.md")
ENCODE_MODES = ("keras_tokenizer", "keras_imdb_index")
_SEAL = "manifest_sha256"


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
    """A checked bundle: its folder and its ``bundle.json`` metadata."""

    path: Path
    meta: dict[str, Any]
    encode: dict[str, Any]
    source: str = ""  # where it was loaded from (a storage URI, or the local folder)

    @property
    def labels(self) -> tuple[str, str]:
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

    def model_file(self, variant: str = "fp32") -> Path:
        models = self.meta["models"]
        if variant not in models:
            raise BundleError(
                f"{self.path}: no {variant!r} model in this bundle (has {sorted(models)})"
            )
        return self.path / models[variant]["file"]

    def tokenizer_json(self) -> str:
        """The bundle's tokenizer.json (its ``encode`` section says which kernel reads it)."""
        return (self.path / "tokenizer.json").read_text(encoding="utf-8")


def load_bundle(path: str | Path, cache: Path | None = None) -> Bundle:
    """Open a bundle (a folder, or a storage URI fetched into ``cache``) after checking its
    format version and the size and sha256 of every file.

    Raises BundleError naming the file and what was expected for a missing, truncated,
    altered or unknown-version bundle.
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
    files = doc.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{manifest}: has no 'files' table")
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"{manifest}: lists no checksum for required file {name}")
    for name, entry in sorted(files.items()):
        _check_file(folder, name, entry)
    return Bundle(folder, doc, _read_encode(folder / "tokenizer.json", doc), source)


def fetch_bundle(uri: str | Path, cache: Path | None = None) -> Path:
    """A local copy of the bundle at a storage URI, in critic's cache under its seal (fetched
    once per bundle version; :func:`load_bundle` then checks every file as for any bundle)."""
    remote = location(uri)
    manifest = remote / BUNDLE_FILE
    try:
        raw = manifest.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{manifest}: cannot read the bundle's {BUNDLE_FILE} ({e})") from e
    files = doc.get("files") if isinstance(doc, dict) else None
    seal = doc.get(_SEAL) if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not isinstance(seal, str) or not seal.isalnum():
        raise BundleError(f"{manifest}: not a sealed critic bundle")
    dest = Path(cache or cache_dir()) / "bundles" / seal[:32]
    if (dest / BUNDLE_FILE).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fetching-", dir=dest.parent))
    try:
        for name in files:
            _check_name(manifest, name)
            try:
                (tmp / name).write_bytes((remote / name).read_bytes())
            except OSError as e:
                raise BundleError(f"{remote / name}: cannot fetch ({e})") from e
        (tmp / BUNDLE_FILE).write_bytes(raw)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process fetched it first
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


def _check_file(folder: Path, name: str, entry: Any) -> None:
    _check_name(folder / BUNDLE_FILE, name)
    target = folder / name
    if not target.is_file():
        raise BundleError(f"{folder}: incomplete bundle, {name} is missing")
    size = target.stat().st_size
    if size != entry.get("bytes"):
        raise BundleError(
            f"{target}: expected {entry.get('bytes')} bytes, found {size} (truncated or replaced)"
        )
    digest = sha256_file(target)
    if digest != entry.get("sha256"):
        raise BundleError(
            f"{target}: sha256 {digest} does not match the expected {entry.get('sha256')} "
            "(the file was altered)"
        )


def _read_encode(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    try:
        encode = json.loads(path.read_text(encoding="utf-8"))["encode"]
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: no valid 'encode' section ({e})") from e
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
