#!/usr/bin/env python3
"""Encode every image of a shard set once with a trained autoencoder: the latent cache for stage 2.

Example:
  python3 tools/cache_latents.py --checkpoint runs/ae_cpu/checkpoints/model-latest.safetensors \\
      --data 'shards/photos-{000000..000002}.tar' --out 'latents/photos-%06d.tar' --flip

  python3 tools/cache_latents.py --checkpoint wip/ae_cpu_v4.safetensors \\
      --data 'shards/v2/train/photos-{000000..000003}.tar' --out 'latents/v4views/photos-%06d.tar' --views 200
      (200 random views per photo: square crops at random scales, flipped at random; data/views.py)

Writes the latent shards and latents/stats.json (per-channel mean/std, global std, the latent shape
and the autoencoder's path and sha256). Corrupt images are skipped and counted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infd.cli import OneLineParser, interrupt_on_sigterm, refuse_overwrite, run_tool


def parse_args(argv=None):
    p = OneLineParser(prog="cache_latents.py", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="autoencoder .safetensors (or a diffusion bundle)")
    p.add_argument("--data", required=True, help="image shards, e.g. 'shards/photos-{000000..000002}.tar'")
    p.add_argument("--out", required=True, help="latent shard pattern, e.g. 'latents/photos-%%06d.tar'")
    p.add_argument("--flip", action="store_true", help="also encode the mirrored image (sample key_flip)")
    p.add_argument("--views", type=int, default=0,
                   help="random square views per photo (crops at random scales; default 0: the whole image)")
    p.add_argument("--view-augment", default="hflip",
                   help="augmentation of the views: a comma list of hflip, vflip, rot90, hue=DEG, saturation=S, "
                        "brightness=B, channel_permutation (default hflip; 'none' for none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the views (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="images encoded together (default 16)")
    p.add_argument("--num-workers", type=int, default=1, help="decoding workers (default 1)")
    p.add_argument("--max-count", type=int, default=10000, help="latents per shard (default 10000)")
    p.add_argument("--square", default="center_crop", choices=["center_crop", "pad"],
                   help="how non-square photos become square (default center_crop, as in stage 1)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p, p.parse_args(argv)


def parse_view_augment(text: str):
    """``--view-augment`` -> an ``AugmentConfig`` (``ValueError`` with one line for a bad item)."""
    from infd.data.augment import AugmentConfig

    flags = {"hflip", "vflip", "rot90", "channel_permutation"}
    amounts = {"hue": "hue_degrees", "saturation": "saturation", "brightness": "brightness"}
    fields = {}
    for item in (i.strip() for i in text.split(",") if i.strip() and text.strip() != "none"):
        name, _, value = item.partition("=")
        if name in flags and not value:
            fields[name] = True
        elif name in amounts and value:
            try:
                fields[amounts[name]] = float(value)
            except ValueError:
                raise ValueError(f"--view-augment {item}: {value!r} is not a number") from None
        else:
            raise ValueError(f"--view-augment: unknown item '{item}' (hflip, vflip, rot90, channel_permutation, "
                             "hue=DEG, saturation=S, brightness=B)")
    return AugmentConfig(**fields)


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    interrupt_on_sigterm()
    if args.views < 0:
        parser.error("--views must be >= 0")
    if args.batch_size <= 0 or args.max_count <= 0 or args.num_workers < 0:
        parser.error("--batch-size and --max-count must be positive, --num-workers >= 0")
    try:
        view_augment = parse_view_augment(args.view_augment)
    except ValueError as err:
        return parser.fail(err)
    from tqdm import tqdm

    from infd.data.latent_cache import cache_latents
    from infd.data.patches import PatchConfig
    from infd.data.pipeline import DataError, expand_urls
    from infd.data.shards import ShardError, check_pattern
    from infd.checkpoint import CheckpointError, file_sha256
    from infd.devices import resolve_device
    from infd.models.autoencoder import load_autoencoder

    try:
        check_pattern(args.out)
        missing = [u for u in expand_urls(args.data) if ":" not in u.split("/")[0] and not Path(u).is_file()]
        if not expand_urls(args.data) or missing:
            raise ShardError(f"image shard not found: {missing[0] if missing else args.data}")
        local = [u for u in expand_urls(args.data) if ":" not in u.split("/")[0]]
        refuse_overwrite([args.out, str(Path(args.out % 0).parent / "stats.json")], [*local, args.checkpoint])
        device = resolve_device(args.device)
        model = load_autoencoder(args.checkpoint, device)
        extra = {"autoencoder": str(args.checkpoint), "autoencoder_sha256": file_sha256(args.checkpoint)}
        with tqdm(unit="img", disable=args.quiet, file=sys.stderr, desc="encoding") as bar:
            def on_batch(images, skipped):
                bar.set_postfix(skipped=skipped, refresh=False)
                bar.update(images - bar.n)

            summary = cache_latents(lambda inp: model.encode(inp.to(device)), args.data, args.out,
                                    encoder_size=model.config.input_size, batch_size=args.batch_size, flip=args.flip,
                                    num_workers=args.num_workers, max_count=args.max_count,
                                    patches=PatchConfig(square=args.square), stats_extra=extra, views=args.views,
                                    view_augment=view_augment, seed=args.seed, on_batch=on_batch)
    except (ShardError, CheckpointError, DataError, ValueError, OSError) as err:  # UsageError is a ValueError
        return parser.fail(err)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the writer removed its partial shard
        print(f"{parser.prog}: interrupted; the cache in {Path(args.out).parent} is incomplete (no stats.json): "
              f"run again to rebuild it", file=sys.stderr)
        return 130
    stats = summary.stats
    print(f"images encoded: {summary.num_images}, latents written: {summary.num_latents} "
          f"{list(stats.latent_shape)}, skipped: {summary.num_skipped}, labelled: {stats.num_labelled}")
    for shard, key, reason in summary.skipped:
        print(f"  skipped {key} in {shard}: {reason}")
    print(f"per-channel mean {[round(m, 4) for m in stats.mean]}, std {[round(s, 4) for s in stats.std]}, "
          f"global std {stats.global_std:.4f}")
    for path in summary.shards:
        print(f"wrote {path}")
    print(f"wrote {summary.stats_path}")
    return 0


if __name__ == "__main__":
    run_tool(main)
