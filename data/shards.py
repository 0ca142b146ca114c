"""Webdataset tar shards holding original encoded photos: writing them from a folder, reading them.

Each image becomes one sample ``{key}.{ext}`` (the file's bytes, untouched) plus ``{key}.json``
(``width``/``height`` as displayed, i.e. after EXIF orientation, ``source`` = path relative to
the source folder, ``format``, ``mode``, ``bytes``). Keys are ``%08d`` indices in a deterministic
order (relative paths sorted), so the same folder always gives the same shards, byte for byte
(fixed tar mtime/owner). A shard holds at most ``max_count`` samples and ``max_size`` bytes
(tar padding included; a single larger sample still gets a shard of its own). Shards are written to a temporary name
and renamed when complete. Files that do not decode (``verify``) are skipped and reported.

``read_shard(url)`` streams the samples of one shard: a local path or anything webdataset's
``gopen`` opens (``pipe:cmd``, ``http(s)://`` via curl, ...). Members larger than a cap (a sparse
"2 GB" member in a 20 KB file) and members whose names are not plain relative paths (``../x``,
``/etc/x``: unsafe to extract, and never copied into a tar this project writes) are skipped unread.
"""
from __future__ import annotations

import io
import json
import os
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .decode import IMAGE_EXTENSIONS, DecodeConfig, DecodeError, finish_decode, open_image, \
    oriented_size, request_draft

_BLOCK = 512  # tar block size


class ShardError(ValueError):
    """Bad arguments for writing shards (pattern, limits, source folder)."""


@dataclass
class ShardSummary:
    """What ``write_shards`` did: counts, shard paths and every skipped file with its reason."""

    written: int = 0
    total_bytes: int = 0
    shards: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def format(self) -> str:
        """A human-readable multi-line report."""
        lines = [f"images written: {self.written} ({self.total_bytes / 1e6:.1f} MB) "
                 f"in {len(self.shards)} shard(s)", f"skipped: {len(self.skipped)}"]
        lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def list_images(src_dir: str | Path) -> list[Path]:
    """Image files under ``src_dir`` (recursive, by extension, case-insensitive), sorted by their
    relative path; hidden files and folders are ignored. Symlinked folders are followed once per real
    folder: a link back up the tree (a cycle) or a second link to a folder already walked adds nothing."""
    root = Path(src_dir)
    if not root.is_dir():
        raise ShardError(f"source folder not found: {root}")
    found, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.stat(folder)
        if (real.st_dev, real.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((real.st_dev, real.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS \
                    and "." in name:
                found.append(Path(folder) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def inspect_image(data: bytes, verify: bool = True, decode: DecodeConfig | None = None) -> dict:
    """Metadata of encoded bytes; with ``verify`` the pixels are decoded too (cheaply: JPEGs at
    1/8 scale, which still reads every byte). Raises ``DecodeError`` for unusable files."""
    decode = decode or DecodeConfig()
    img = open_image(data, decode.max_pixels)
    width, height = oriented_size(img)
    meta = {"width": width, "height": height, "format": img.format, "mode": img.mode, "bytes": len(data)}
    if verify:
        request_draft(img, (1, 1))
        finish_decode(img, decode.background)
    return meta


def _member_size(nbytes: int) -> int:
    return _BLOCK + -(-nbytes // _BLOCK) * _BLOCK


class ShardWriter:
    """Deterministic tar shards from ``pattern % index`` (e.g. ``out/shards-%06d.tar``)."""

    def __init__(self, pattern: str, max_count: int = 10000, max_size: int = 1_000_000_000):
        check_pattern(pattern)
        if max_count <= 0 or max_size <= 0:
            raise ShardError(f"max_count and max_size must be positive, got {max_count}, {max_size}")
        self.pattern, self.max_count, self.max_size = pattern, max_count, max_size
        self.paths: list[str] = []
        self._tar = self._tmp = None
        self._count = self._size = 0

    def write(self, key: str, files: dict[str, bytes]) -> None:
        """Add one sample: ``files`` maps extensions to bytes, stored as ``{key}.{ext}``; ``ShardError`` for
        a key that is not a plain relative name (``safe_name``)."""
        if not safe_name(key) or any(not ext or "/" in ext for ext in files):
            raise ShardError(f"unsafe sample key or extension for a tar member: {key[:80]!r}")
        size = sum(_member_size(len(data)) for data in files.values())
        if self._tar is not None and (self._count >= self.max_count
                                      or self._size + size + tarfile.RECORDSIZE > self.max_size):
            self._finish()
        if self._tar is None:
            self._start()
        for ext, data in files.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o444
            self._tar.addfile(info, io.BytesIO(data))
        self._count += 1
        self._size += size

    def _start(self) -> None:
        path = self.pattern % len(self.paths)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._tmp = f"{path}.tmp"
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
        self.paths.append(path)
        self._count = self._size = 0

    def _finish(self) -> None:
        self._tar.close()
        os.replace(self._tmp, self.paths[-1])
        self._tar = self._tmp = None

    def close(self) -> list[str]:
        """Finish the last shard; returns every shard path written."""
        if self._tar is not None:
            self._finish()
        return list(self.paths)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        elif self._tmp is not None:  # leave no half-written shard behind, even when closing fails (ENOSPC)
            try:
                self._tar.close()
            except OSError:
                pass
            finally:
                Path(self._tmp).unlink(missing_ok=True)
                self._tar = self._tmp = None


def split_files(files: list[Path], val_count: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """``(train, val)``: ``val_count`` of ``files`` drawn with a seeded shuffle for validation, the rest for
    training, each in the given order; the same folder and seed give the same split."""
    if not 0 <= val_count < len(files):
        raise ShardError(f"cannot hold out {val_count} of {len(files)} images: leave at least one for training")
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    held = set(order[:val_count])
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def val_pattern(pattern: str) -> str:
    """Where the validation shards of ``pattern`` go by default: ``out/photos-%06d.tar`` ->
    ``out/val/photos-%06d.tar``."""
    path = Path(pattern)
    return str(path.parent / "val" / path.name)


def check_pattern(pattern: str) -> str:
    """A shard name pattern must hold one integer field, e.g. ``shards-%06d.tar``."""
    try:
        first, second = pattern % 0, pattern % 1
    except (TypeError, ValueError):
        first = second = None
    if first is None or first == second or not first.endswith(".tar"):
        raise ShardError(f"shard pattern must contain one integer field and end in .tar, "
                         f"like out/shards-%06d.tar; got {pattern!r}")
    return pattern


def write_shards(files: Iterable[str | Path], root: str | Path, pattern: str, *, max_count: int = 10000,
                 max_size: int = 1_000_000_000, verify: bool = True, decode: DecodeConfig | None = None,
                 on_file: Callable[[Path, str | None], None] | None = None,
                 describe: Callable[[Path], dict] | None = None) -> ShardSummary:
    """Write ``files`` (paths under ``root``, in the given order) into tar shards.

    ``describe(path)`` gives extra JSON fields for a file (e.g. author and licence); they are added
    to, and may replace, the measured ones.

    ``on_file(path, skip_reason_or_None)`` is called after each file (progress bars). Unreadable
    files are skipped and listed in the summary, never fatal.
    """
    root = Path(root)
    summary = ShardSummary()
    with ShardWriter(pattern, max_count, max_size) as writer:
        for path in files:
            path = Path(path)
            relative = path.relative_to(root).as_posix()
            try:
                data = path.read_bytes()
                meta = inspect_image(data, verify, decode)
            except (OSError, DecodeError) as err:
                reason = str(err) if isinstance(err, DecodeError) else f"cannot read: {err}"
                summary.skipped.append((relative, reason))
                if on_file:
                    on_file(path, reason)
                continue
            meta["source"] = relative
            if describe:
                meta.update(describe(path))
            key = f"{summary.written:08d}"
            ext = path.suffix[1:].lower()
            writer.write(key, {ext: data, "json": json.dumps(meta, sort_keys=True).encode()})
            summary.written += 1
            summary.total_bytes += len(data)
            if on_file:
                on_file(path, None)
        summary.shards = writer.close()
    return summary


DEFAULT_MAX_MEMBER_BYTES = 512 << 20  # far above any photo; what one member may cost in memory


def safe_name(name: str) -> bool:
    """Whether a tar member name is a plain relative path: not empty or absolute, no ``..``/``.``/empty
    parts, no backslashes or control characters (safe to extract anywhere, and to copy into a tar)."""
    if not name or name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def read_shard(url: str, max_member_bytes: int | None = DEFAULT_MAX_MEMBER_BYTES,
               on_skip: Callable[[str, str], None] | None = None) -> Iterator[dict]:
    """Samples ``{"__key__", "__url__", ext: bytes, ...}`` of one tar shard, in file order.

    Consecutive files sharing a key (the name up to the first dot of its last path part) form a
    sample. A read error ends the shard with an exception after the complete samples before it. Members
    over ``max_member_bytes`` (None: no cap) or with unsafe names (``safe_name``) are passed over without
    reading their data, each reported to ``on_skip(name, reason)``.
    """
    from webdataset.gopen import gopen  # imported here: only readers need webdataset

    stream = gopen(url, "rb")
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            sample = None
            for member in tar:
                folder, _, name = member.name.rpartition("/")
                if not member.isreg() or "." not in name:
                    continue
                reason = ("unsafe member name" if not safe_name(member.name) else
                          f"member of {member.size} bytes is over the {max_member_bytes}-byte cap"
                          if max_member_bytes is not None and member.size > max_member_bytes else None)
                if reason is not None:
                    if on_skip is not None:
                        on_skip(member.name[:200], reason)
                    continue
                stem, ext = name.split(".", 1)
                key = f"{folder}/{stem}" if folder else stem
                if sample is None or sample["__key__"] != key:
                    if sample is not None:
                        yield sample  # complete: yielded before the next member is read (it may be truncated)
                    sample = {"__key__": key, "__url__": url}
                sample[ext.lower()] = tar.extractfile(member).read()
            if sample is not None:
                yield sample
    finally:
        stream.close()
