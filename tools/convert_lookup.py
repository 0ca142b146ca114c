#!/usr/bin/env python3
"""Switch a stage-1 autoencoder's CLIF renderer between the nearest and the bilinear field lookup.

Examples:
  python tools/convert_lookup.py wip/ae_cpu_v4.safetensors bilinear wip/ae_cpu_v5_init.safetensors
  python tools/train.py ae --config configs/train/ae_cpu_v5.yaml --init-from wip/ae_cpu_v5_init.safetensors

Only the renderer's first conv changes (its relative-coordinate inputs are dropped or added as zeros);
the encoder, decoder and latent space stay, so a prior trained on the old latents still fits. The step
counter of the input carries over (see infd/convert/lookup.py).
"""
from __future__ import annotations

from infd.cli import OneLineParser, UsageError, run_tool


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("src", help="autoencoder .safetensors (or a diffusion bundle: its autoencoder)")
    parser.add_argument("lookup", choices=["nearest", "bilinear"], help="field lookup of the output's renderer")
    parser.add_argument("dst", help="output .safetensors")
    args = parser.parse_args(argv)
    from infd.checkpoint import CheckpointError
    from infd.convert.lookup import switch_lookup
    from infd.convert.rewrite import rewrite_autoencoder

    try:
        model, _, step = rewrite_autoencoder(args.src, args.dst, lambda m: switch_lookup(m, args.lookup), "lookup_from")
    except (CheckpointError, UsageError, OSError, ValueError) as err:
        return parser.fail(err)
    print(f"wrote {args.dst}: {model.renderer.config.lookup} -> {args.lookup} lookup (step {step})")
    return 0


if __name__ == "__main__":
    run_tool(main)
