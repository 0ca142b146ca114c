#!/usr/bin/env python3
"""Evaluate a stage-1 autoencoder on held-out photos: PSNR / SSIM / LPIPS at several output sizes
(against bicubic upsampling of the encoder input) and scale consistency, as a Markdown table.

Examples:
  python tools/eval_ae.py runs/ae_cpu/checkpoints/model-latest.safetensors --data shards/photos-000003.tar
  python tools/eval_ae.py ae.safetensors --data 'val-{000..009}.tar' --sizes 256 512 1024 --num 50 --grid grid.png
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="autoencoder .safetensors (e.g. runs/x/checkpoints/model-latest.safetensors)")
    parser.add_argument("--data", required=True, help="shard URLs of held-out photos")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="output sizes (pixels a side)")
    parser.add_argument("--num", type=int, default=8, help="number of photos (the first N of the shards)")
    parser.add_argument("--no-lpips", action="store_true", help="skip LPIPS (no weights needed)")
    parser.add_argument("--grid", help="also write a reconstruction grid PNG here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.num <= 0 or min(args.sizes) <= 0:
        parser.error("--num and --sizes must be positive")

    from infd.data import DataConfig
    from infd.ae_eval import evaluate_autoencoder, first_images, format_table, reconstruction_grid
    from infd.checkpoint import CheckpointError, load_model
    from infd.losses import MissingWeightsError, load_lpips

    try:
        model = load_model(args.checkpoint, device=args.device)
        data = DataConfig(urls=args.data, mode="whole", resampled=False)
        data.patches.encoder_size = model.config.input_size
        photos = first_images(data, args.num)
        if not photos:
            raise ValueError(f"no images found in {args.data}")
        lpips_net = None if args.no_lpips else load_lpips()
    except (CheckpointError, MissingWeightsError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = evaluate_autoencoder(model, data, photos, args.sizes, lpips_net, device=args.device)
    print(f"{len(photos)} photos, encoder input {model.config.input_size}; reconstruction vs bicubic upsampling\n")
    print(format_table(table))
    if args.grid:
        print(f"\ngrid: {reconstruction_grid(model, data, photos, args.sizes, args.grid, device=args.device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
