#!/usr/bin/env python3
"""Give a trained stage-1 autoencoder more latent channels without changing what it renders.

Examples:
  python tools/widen_latent.py wip/ae_cpu_v3.safetensors 4 wip/ae_cpu_v4_init.safetensors
  python tools/train.py ae --config configs/train/ae_cpu_v4.yaml --init-from wip/ae_cpu_v4_init.safetensors

The new channels start unused (zero decoder weights) and training puts them to work; the step counter
of the input carries over (see infd/convert/widen.py).
"""
from __future__ import annotations

from infd.cli import OneLineParser, UsageError, run_tool


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("src", help="autoencoder .safetensors (or a diffusion bundle: its autoencoder)")
    parser.add_argument("z_channels", type=int, help="latent channels of the widened model")
    parser.add_argument("dst", help="output .safetensors")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new channels' encoder weights")
    args = parser.parse_args(argv)
    from infd.checkpoint import CheckpointError
    from infd.convert.rewrite import rewrite_autoencoder
    from infd.convert.widen import describe, widen_latent

    try:
        model, wide, step = rewrite_autoencoder(args.src, args.dst, lambda m: widen_latent(m, args.z_channels,
                                                                                         seed=args.seed), "widened_from")
    except (CheckpointError, UsageError, OSError, ValueError) as err:
        return parser.fail(err)
    print(f"wrote {args.dst}: {describe(model)} -> {describe(wide)} (step {step})")
    return 0


if __name__ == "__main__":
    run_tool(main)
