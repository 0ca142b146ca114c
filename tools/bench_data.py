#!/usr/bin/env python3
"""Patches per second of one data worker: exact decoding, the JPEG draft fast path, and the draft path
with the decoded-photo cache (``data.decode.cache_mb``, on by default; the cache warms up over the
``--warmup`` patches, so give it at least a pass over the photos for a steady-state figure).

By default builds shards of the Debian 2560x1600 JPEG photos in a temporary folder (needs
``apt-get install -y plasma-workspace-wallpapers``) and samples P=256 patches from them in this
process with one torch thread, i.e. what one DataLoader worker does. All runs use the same seed,
hence the same scales and crops. The last line is ``patches_per_s_per_worker=<n>`` (the last run).

Example:
    python3 tools/bench_data.py --patches 120 --warmup 40
    python3 tools/bench_data.py --urls 'shards/photos-{000000..000003}.tar' --max-size native
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
import time

import torch
from tqdm import tqdm

from infd.cli import OneLineParser, run_tool
from infd.data.patches import PatchConfig
from infd.data.photos import INSTALL_HINT, find_debian_photos
from infd.data.pipeline import DataConfig, ShardDataset
from infd.data.shards import write_shards


def measure(config: DataConfig, num_patches: int, warmup: int, quiet: bool) -> tuple[float, float]:
    """``(wall, cpu)`` patches per second of one in-process worker over ``num_patches`` after
    ``warmup``: per wall-clock second, and per CPU second of this process (what the worker would
    do with a core to itself; the two agree on an idle machine)."""
    stream = iter(ShardDataset(config))
    for _ in itertools.islice(stream, warmup):
        pass
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in tqdm(itertools.islice(stream, num_patches), total=num_patches, disable=quiet, file=sys.stderr,
                  unit="patch", leave=False):
        pass
    return num_patches / (time.perf_counter() - wall), num_patches / (time.process_time() - cpu)


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--urls", default=None, help="shards to read (default: Debian 2560x1600 photos)")
    parser.add_argument("--patches", type=int, default=120, help="patches timed per run (default 120)")
    parser.add_argument("--warmup", type=int, default=5, help="patches before timing (default 5)")
    parser.add_argument("--patch-size", type=int, default=256, help="P (default 256)")
    parser.add_argument("--encoder-size", type=int, default=256, help="S (default 256)")
    parser.add_argument("--max-size", default="1024", help="cap on r, or 'native' (default 1024, the paper)")
    parser.add_argument("--scale-dist", default="uniform", choices=["uniform", "log_uniform"])
    parser.add_argument("--cache-mb", type=float, default=1024.0, help="decoded-photo cache of the third run "
                        "(data.decode.cache_mb; default 1024; 0 skips that run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.patches <= 0 or args.warmup < 0 or not args.cache_mb >= 0:
        parser.error("--patches must be positive and --warmup and --cache-mb non-negative")
    if args.max_size != "native" and not args.max_size.isdigit():
        parser.error(f"--max-size must be an integer or 'native', got {args.max_size!r}")
    torch.set_num_threads(1)  # what a DataLoader worker gets
    with tempfile.TemporaryDirectory() as tmp:
        urls = args.urls
        if urls is None:
            photos, _ = find_debian_photos(size="2560x1600")
            if not photos:
                print(f"{parser.prog}: error: no 2560x1600 photos; install them: {INSTALL_HINT}", file=sys.stderr)
                return 2
            summary = write_shards(photos, "/usr/share", f"{tmp}/bench-%06d.tar", max_count=4)
            urls = summary.shards
            print(f"shards: {summary.written} real 2560x1600 JPEG photos in {len(urls)} shards")
        max_size = None if args.max_size == "native" else int(args.max_size)
        patches = PatchConfig(encoder_size=args.encoder_size, patch_size=args.patch_size, max_size=max_size,
                              scale_dist=args.scale_dist)
        config = DataConfig(urls=urls, resampled=True, seed=args.seed, patches=patches)
        print(f"P={args.patch_size} S={args.encoder_size} r~{args.scale_dist}[P, min(native, {args.max_size})], "
              f"1 process, 1 torch thread")
        variants = {"exact decode (no draft)": dataclasses.replace(patches, fast_decode=False),
                    "draft fast path": patches}
        if args.cache_mb:
            variants[f"draft + {args.cache_mb:g} MB cache"] = patches
        rates = {}
        for name, variant in variants.items():
            decode = dataclasses.replace(config.decode, cache_mb=args.cache_mb if "cache" in name else 0.0)
            run = dataclasses.replace(config, patches=variant, decode=decode)
            rates[name] = measure(run, args.patches, args.warmup, args.quiet)
            wall, cpu = rates[name]
            print(f"{name:24s} {wall:6.1f} patches/s per worker (wall clock), {cpu:6.1f} per CPU second")
        names = list(rates)
        for name in names[1:]:
            print(f"{name} speed-up over exact decode: {rates[name][1] / rates[names[0]][1]:.2f}x (CPU time)")
        wall, cpu = rates[names[-1]]
        if wall < 0.8 * cpu:
            print(f"note: the machine is busy (wall clock {wall:.1f}/s < CPU {cpu:.1f}/s): on an idle core a worker "
                  f"reaches about the per-CPU-second rate")
    print(f"patches_per_s_per_worker={rates[names[-1]][0]:.1f}")  # the last variant: the cache when on
    return 0


if __name__ == "__main__":
    run_tool(main)
