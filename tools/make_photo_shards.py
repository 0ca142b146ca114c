#!/usr/bin/env python3
"""Shards of the real photographs of eight offline sources (artwork left out), split by source.

train: the Debian wallpaper packages (plasma-workspace-wallpapers, lomiri-wallpapers-16.04,
lomiri-wallpapers-20.04, ukui-wallpapers, mate-backgrounds). heldout: scikit-image, scikit-learn and matplotlib's
photos, for evaluation only; a held-out source is never written into train. Each image's JSON
adds source, path, author, licence, split and its hand-labelled scene class (``scene``, and ``label`` =
its index in ``infd.data.photos.SCENES``: the class-conditional prior's label) (the list: data/photos.py).

Needs: apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
ukui-wallpapers mate-backgrounds; python3 -m pip install scikit-image scikit-learn matplotlib

Example:
    python3 tools/make_photo_shards.py shards/photos                 # shards/photos/{train,heldout}/photos-%06d.tar
    python3 tools/make_photo_shards.py shards/photos-%06d.tar        # one split (--split, default train)
    python3 tools/make_photo_shards.py out/p-%06d.tar --sources plasma-workspace-wallpapers,lomiri-wallpapers-16.04
                                                                  # the original 25 photos
    python3 tools/make_photo_shards.py out/bench-%06d.tar --size 2560x1600 --max-count 4
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from infd.cli import OneLineParser, run_tool
from infd.data.photos import INSTALL_HINT, SOURCES, SPLITS, find_debian_photos, find_photos
from infd.data.shards import ShardError, check_pattern, write_shards


def split_sources(split: str, requested: list[str] | None) -> list[str]:
    """The sources written into ``split``; raises ValueError for a source of the other split
    (a held-out source is never trained on)."""
    if requested is None:
        return [s for s, (home, _) in SOURCES.items() if home == split]
    for source in requested:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        if SOURCES[source][0] != split:
            raise ValueError(f"{source} is a {SOURCES[source][0]} source; it never goes into {split}")
    return requested


def write_split(split: str, sources: list[str], pattern: str, args) -> int:
    """Write one split; prints missing sources (one line each) and a summary line. Returns the
    number of images written."""
    found, missing = find_photos(sources, args.root, args.python_root)
    for source, count in Counter(photo.source for photo in missing).items():
        print(f"warning: {split}: {count} photo(s) of {source} not found; install: {SOURCES[source][1]}",
              file=sys.stderr)
    if not found:
        print(f"{split}: no photos found", file=sys.stderr)
        return 0
    root = Path(os.path.commonpath([str(r) for _, _, r in found]))
    by_path = {path: photo for photo, path, _ in found}

    def describe(path: Path) -> dict:
        photo = by_path[path]
        return {"source": photo.source, "path": path.relative_to(root).as_posix(), "author": photo.author,
                "licence": photo.licence, "split": split, "scene": photo.scene, "label": photo.label}

    with tqdm(total=len(found), unit="img", disable=args.quiet, file=sys.stderr) as bar:
        summary = write_shards([path for _, path, _ in found], root, pattern, max_count=args.max_count,
                               on_file=lambda *_: bar.update(), describe=describe)
    counts = Counter(by_path[path].source for path in by_path)
    print(f"{split}: {summary.written} photos ({summary.total_bytes / 1e6:.1f} MB) in {len(summary.shards)} "
          f"shard(s) from {', '.join(f'{s} {counts.get(s, 0)}' for s in sources)}; skipped {len(summary.skipped)}")
    for path, reason in summary.skipped:
        print(f"  skipped {path}: {reason}")
    for path in summary.shards:
        print(f"wrote {path}")
    return summary.written


def write_benchmark(args) -> int:
    """The original form with ``--size``: the Plasma photos at one size, plain JSON."""
    found, missing = find_debian_photos(args.root, args.size)
    if not found:
        print(f"make_photo_shards.py: error: no photos found under {args.root}; install them with: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    if missing:
        print(f"warning: {len(missing)} photo(s) missing: {', '.join(missing)}", file=sys.stderr)
    with tqdm(total=len(found), unit="img", disable=args.quiet, file=sys.stderr) as bar:
        summary = write_shards(found, args.root, args.out, max_count=args.max_count, on_file=lambda *_: bar.update())
    print(summary.format())
    for path in summary.shards:
        print(f"wrote {path}")
    return 0 if summary.written else 1


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="a folder (both splits) or shard names with one integer field "
                                    "(one split), e.g. shards/photos-%%06d.tar")
    parser.add_argument("--split", choices=SPLITS, default="train", help="the split of a shard pattern")
    parser.add_argument("--sources", default=None, help="comma-separated sources of that split (default: all)")
    parser.add_argument("--size", default=None, help="only the Plasma photos at this size, e.g. 2560x1600")
    parser.add_argument("--max-count", type=int, default=8, help="images per shard (default 8)")
    parser.add_argument("--root", default="/usr/share", help="where the Debian packages installed their files")
    parser.add_argument("--python-root", default=None,
                        help="folder holding skimage/, sklearn/, matplotlib/ (default: where they are installed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.max_count <= 0:
        parser.error(f"--max-count must be positive, got {args.max_count}")
    is_pattern = "%" in args.out
    if is_pattern:
        try:
            check_pattern(args.out)
        except ShardError as err:
            parser.error(str(err))
    elif args.size or args.sources:
        parser.error("--size and --sources need a shard pattern (one split), e.g. shards/photos-%%06d.tar")
    if args.size:
        return write_benchmark(args)
    requested = args.sources.split(",") if args.sources else None
    jobs = [(args.split, f"{args.out}")] if is_pattern else \
        [(split, os.path.join(args.out, split, "photos-%06d.tar")) for split in SPLITS]
    try:
        plan = [(split, split_sources(split, requested if is_pattern else None), pattern) for split, pattern in jobs]
    except ValueError as err:
        parser.error(str(err))
    written = [write_split(split, sources, pattern, args) for split, sources, pattern in plan]
    if not any(written):
        print(f"make_photo_shards.py: error: no photos found; install them with: {INSTALL_HINT} "
              f"lomiri-wallpapers-20.04 ukui-wallpapers mate-backgrounds", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_tool(main)
