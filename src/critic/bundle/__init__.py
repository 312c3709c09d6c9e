"""The bottom layer's model side: the sealed bundle format and its TF-free loader
(:mod:`.format`), and ONNX inference over id arrays shared by export and serve
(:mod:`.inference`)."""

from .format import (
    BASE_VARIANT,
    BUNDLE_FILE,
    ENCODE_MODES,
    FORMAT,
    FORMAT_VERSION,
    Bundle,
    BundleError,
    bundle_files,
    file_entry,
    load_bundle,
    seal_manifest,
    sha256_file,
    unpack_bundle,
)

__all__ = [
    "BASE_VARIANT",
    "BUNDLE_FILE",
    "ENCODE_MODES",
    "FORMAT",
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "bundle_files",
    "file_entry",
    "load_bundle",
    "seal_manifest",
    "sha256_file",
    "unpack_bundle",
]
