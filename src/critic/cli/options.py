"""Options shared by the commands that load a bundle (score, serve, predict)."""

from __future__ import annotations

import argparse

from critic.bundle import BASE_VARIANT
from critic.serve.providers import DEFAULT_DEVICE, DEVICES


def add_bundle_options(parser: argparse.ArgumentParser, *, device: bool = True) -> None:
    """--model, --variant and (with ``device``) --device."""
    parser.add_argument(
        "--model", required=True, metavar="BUNDLE", help="bundle folder (path or storage URI)"
    )
    parser.add_argument("--variant", default=BASE_VARIANT, help="bundle model variant (fp32, int8)")
    if device:
        parser.add_argument(
            "--device",
            choices=DEVICES,
            default=DEFAULT_DEVICE,
            help="onnxruntime device; auto takes CUDA when there is one, else the CPU",
        )
