#!/usr/bin/env python3
"""Pack a folder of photos into webdataset tar shards (original bytes + JSON metadata).

Examples:
    python3 tools/make_shards.py ~/photos shards/photos-%06d.tar --max-count 1000 --max-size 1G
    python3 tools/make_shards.py ~/photos shards/photos-%06d.tar --val-count 10   # + shards/val/photos-*.tar
"""
from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from infd.cli import OneLineParser, interrupt_on_sigterm, run_tool
from infd.data.decode import DecodeConfig
from infd.data.shards import ShardError, check_pattern, list_images, split_files, val_pattern, write_shards


def parse_size(text: str) -> int:
    """``"1G"``, ``"500M"``, ``"64K"``, ``"1e9"`` or ``"123"`` -> bytes (decimal units)."""
    units = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    text = text.strip().upper().removesuffix("B")
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 500M or 1G)") from None
    if not 0 < value < float("inf"):  # also NaN
        raise argparse.ArgumentTypeError(f"size must be a positive finite number of bytes, got {text!r}")
    return int(value)


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_dir", help="folder searched recursively for jpg/jpeg/png/webp/bmp/tif/tiff")
    parser.add_argument("out_pattern", help="shard names with one integer field, e.g. shards/photos-%%06d.tar")
    parser.add_argument("--max-count", type=int, default=10000, help="images per shard (default 10000)")
    parser.add_argument("--max-size", type=parse_size, default="1G", help="bytes per shard, e.g. 500M (default 1G)")
    parser.add_argument("--no-verify", action="store_true", help="skip the full decode check of every image")
    parser.add_argument("--max-pixels", type=int, default=DecodeConfig.max_pixels,
                        help="skip images with more pixels (decompression-bomb limit, default 100M)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--val-count", type=int, help="hold out this many images as a validation set")
    split.add_argument("--val-fraction", type=float, help="hold out this fraction of the images (e.g. 0.05)")
    parser.add_argument("--val-out", help="validation shard pattern (default: a val/ folder beside the shards)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the validation draw (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    interrupt_on_sigterm()
    if args.max_count <= 0:
        parser.error(f"--max-count must be positive, got {args.max_count}")
    if args.max_pixels <= 0:
        parser.error(f"--max-pixels must be positive, got {args.max_pixels}")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        parser.error(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if args.val_count is not None and args.val_count < 1:
        parser.error(f"--val-count must be at least 1, got {args.val_count}")
    splitting = args.val_count is not None or args.val_fraction is not None
    try:
        check_pattern(args.out_pattern)
        val_out = check_pattern(args.val_out or val_pattern(args.out_pattern)) if splitting else None
        if val_out is not None and val_out == args.out_pattern:
            raise ShardError("--val-out must differ from the training shard pattern")
        files = list_images(args.src_dir)
        if not files:
            raise ShardError(f"no images (jpg, jpeg, png, webp, bmp, tif, tiff) under {args.src_dir}")
        sets = [(args.out_pattern, files)]
        if splitting:
            count = args.val_count if args.val_count is not None else max(1, round(args.val_fraction * len(files)))
            train, val = split_files(files, count, args.split_seed)
            sets = [(args.out_pattern, train), (val_out, val)]
        summaries = []
        with tqdm(total=len(files), unit="img", disable=args.quiet, file=sys.stderr) as bar:
            skipped = [0]

            def on_file(path, reason):
                skipped[0] += reason is not None
                bar.set_postfix(skipped=skipped[0], refresh=False)
                bar.update()
            for pattern, chosen in sets:
                summaries.append(write_shards(chosen, args.src_dir, pattern, max_count=args.max_count,
                                              max_size=args.max_size, verify=not args.no_verify,
                                              decode=DecodeConfig(max_pixels=args.max_pixels), on_file=on_file))
    except (ShardError, OSError) as err:
        return parser.fail(err)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the writer removed its partial shard
        print(f"{parser.prog}: interrupted; the shards already finished are an incomplete set: run again to "
              f"rebuild it", file=sys.stderr)
        return 130
    for name, summary in zip(("training", "validation"), summaries):
        if splitting:
            print(f"{name} set:")
        print(summary.format())
        for path in summary.shards:
            print(f"wrote {path}")
    return 0 if all(summary.written for summary in summaries) else 1


if __name__ == "__main__":
    run_tool(main)
