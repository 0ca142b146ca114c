#!/usr/bin/env python3
"""Sweep the guided solver's condition scale on held-out photos: inpainting and super-resolution quality.

Prints one row per task and scale: PSNR on what the condition fixes (the known pixels; the low-resolution
input), PSNR on what it does not (the hole; the full-size photo) and seconds per photo. Scale 0 is the
unguided sample. Definitions: infd/eval/inverse_sweep.py. The defaults of tools/inverse.py come from it.

Examples:
  python tools/sweep_inverse.py --data "shards/v2/heldout/photos-{000000..000001}.tar" --num-photos 4
  python tools/sweep_inverse.py --data val.tar --scales 0 10 100 --tasks sr --steps 50
"""
from __future__ import annotations

import argparse

from infd.cli import OneLineParser, run_tool


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="latent diffusion bundle (default: the bundled model)")
    parser.add_argument("--data", required=True, help="shard URLs of held-out photos")
    parser.add_argument("--num-photos", type=int, default=4, help="photos (default 4)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0, 3, 10, 30, 100, 300],
                        help="condition scales (default 0 3 10 30 100 300)")
    parser.add_argument("--tasks", nargs="+", default=["inpaint", "sr"], help="inpaint and/or sr")
    parser.add_argument("--size", type=int, default=64, help="result side in pixels (default 64)")
    parser.add_argument("--factor", type=int, default=4, help="sr: downsampling factor of the input (default 4)")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    from infd.checkpoint import CheckpointError
    from infd.eval.inverse_sweep import TASKS, sweep
    from infd.eval.photos import eval_data_config, load_photos, photo_square
    from infd.diffusion.sampling import SamplingSpec
    from infd.rendering.sampling import has_prior, load_render_model

    try:
        if args.num_photos < 1 or args.size < 16 or args.factor < 2 or args.size % args.factor:
            raise ValueError("--num-photos >= 1, --size >= 16 and a --factor >= 2 that divides it, please")
        if any(s < 0 for s in args.scales) or not set(args.tasks) <= set(TASKS):
            raise ValueError(f"--scales must be >= 0 and --tasks among {', '.join(TASKS)}")
        model = load_render_model(args.checkpoint).eval()
        if not has_prior(model):
            raise ValueError("the sweep needs a latent diffusion bundle")
        config = eval_data_config(args.data, model.autoencoder.config.input_size)
        photos = [photo_square(p, args.size, config) for p in load_photos(config, args.num_photos)]
        torch.manual_seed(args.seed)
        rows = sweep(model, photos, args.scales, args.tasks, SamplingSpec(steps=args.steps), args.size,
                     args.factor, args.seed)
    except (CheckpointError, OSError, ValueError) as err:
        return parser.fail(err)
    print(f"{len(photos)} photos at {args.size}, DDIM {args.steps} steps, seed {args.seed}")
    print(f"{'task':>8} {'scale':>7} {'condition_psnr':>15} {'truth_psnr':>11} {'s/photo':>8}")
    for r in rows:
        print(f"{r.task:>8} {r.scale:>7g} {r.condition_psnr:>15.2f} {r.truth_psnr:>11.2f} {r.seconds:>8.1f}")
    return 0


if __name__ == "__main__":
    run_tool(main)
