#!/usr/bin/env python3
"""Shards of the real photographs shipped by two Debian packages (artwork left out).

Needs: apt-get update && apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04

Example:
    python3 tools/make_photo_shards.py out/photos-%06d.tar              # all 25 photos
    python3 tools/make_photo_shards.py out/bench-%06d.tar --size 2560x1600 --max-count 4
"""
from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from infd.cli import OneLineParser
from infd.data.photos import INSTALL_HINT, find_debian_photos
from infd.data.shards import ShardError, check_pattern, write_shards


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_pattern", help="shard names with one integer field, e.g. out/photos-%%06d.tar")
    parser.add_argument("--size", default=None, help="only the Plasma photos at this size, e.g. 2560x1600")
    parser.add_argument("--max-count", type=int, default=8, help="images per shard (default 8)")
    parser.add_argument("--root", default="/usr/share", help="where the packages installed their files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.max_count <= 0:
        parser.error(f"--max-count must be positive, got {args.max_count}")
    try:
        check_pattern(args.out_pattern)
    except ShardError as err:
        parser.error(str(err))
    found, missing = find_debian_photos(args.root, args.size)
    if not found:
        print(f"{parser.prog}: error: no photos found under {args.root}; install them with: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    if missing:
        print(f"warning: {len(missing)} photo(s) missing: {', '.join(missing)}", file=sys.stderr)
    with tqdm(total=len(found), unit="img", disable=args.quiet, file=sys.stderr) as bar:
        summary = write_shards(found, args.root, args.out_pattern, max_count=args.max_count,
                               on_file=lambda *_: bar.update())
    print(summary.format())
    for path in summary.shards:
        print(f"wrote {path}")
    return 0 if summary.written else 1


if __name__ == "__main__":
    sys.exit(main())
