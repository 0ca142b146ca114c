"""Output formats and what each can hold; checked before any rendering starts (no torch needed).

Every check raises ``SinkError`` (a ``ValueError``) with one line naming the limit, so a request
that cannot be written fails at once instead of after hours of rendering or with a half file.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class SinkError(ValueError):
    """The chosen output cannot hold or cannot write the requested image."""


@dataclass(frozen=True)
class Format:
    name: str
    extensions: tuple[str, ...]
    bits: tuple[int, ...]  # allowed bit depths per channel
    max_side: int  # the format's own limit on width and height
    streams: bool  # written band by band (memory flat) rather than from a full in-memory image


FORMATS = {
    "png": Format("png", (".png",), (8, 16), 2**31 - 1, streams=True),
    "jpeg": Format("jpeg", (".jpg", ".jpeg"), (8,), 65535, streams=False),
    "webp": Format("webp", (".webp",), (8,), 16383, streams=False),
    "tiff": Format("tiff", (".tif", ".tiff"), (8, 16), 2**32 - 1, streams=True),
}
EXTENSIONS = {ext: fmt for fmt in FORMATS.values() for ext in fmt.extensions}
STREAM_ROWS = 512 + 4096  # most rows a streaming sink buffers: a TIFF tile row plus a render tile row
MEMORY_SHARE = 0.5  # an in-memory image may take at most this share of the available RAM


# --compression names -> tifffile's codec names; which work depends on the installed codecs (zlib and lzma
# come with Python; zstd and jpeg need imagecodecs), so each is probed once by encoding a tiny tile.
TIFF_COMPRESSIONS = {"deflate": "zlib", "lzma": "lzma", "zstd": "zstd", "jpeg": "jpeg"}
_codec_ok: dict[str, bool] = {}


def tiff_codec_available(name: str) -> bool:
    """Whether tifffile can write tiles with the ``--compression`` codec ``name`` here."""
    if name not in _codec_ok:
        import io

        import numpy as np
        import tifffile

        try:
            tifffile.imwrite(io.BytesIO(), np.zeros((16, 16, 3), np.uint8), tile=(16, 16), photometric="rgb",
                             compression=TIFF_COMPRESSIONS[name])
            _codec_ok[name] = True
        except Exception:  # noqa: BLE001 - a missing codec surfaces as ValueError, ImportError or others
            _codec_ok[name] = False
    return _codec_ok[name]


def check_compression(name: str | None, fmt: Format, bits: int = 8) -> str | None:
    """tifffile's codec for ``--compression name`` (``None``/``"none"``: raw), or ``SinkError``."""
    if name in (None, "none"):
        return None
    if name not in TIFF_COMPRESSIONS:
        raise SinkError(f"--compression must be none or one of {', '.join(TIFF_COMPRESSIONS)}, got '{name}'")
    if fmt.name != "tiff":
        raise SinkError(f"--compression applies to .tif outputs; {fmt.name.upper()} has its own")
    if name == "jpeg" and bits != 8:
        raise SinkError("--compression jpeg holds 8-bit images only")
    if not tiff_codec_available(name):
        usable = [n for n in TIFF_COMPRESSIONS if tiff_codec_available(n)]
        raise SinkError(f"--compression {name}: this installation cannot write it (install imagecodecs); "
                        f"available: none, {', '.join(usable)}")
    return TIFF_COMPRESSIONS[name]


def format_for_path(path: str | Path) -> Format:
    """The format named by ``path``'s extension."""
    ext = Path(path).suffix.lower()
    if ext not in EXTENSIONS:
        raise SinkError(f"unsupported output extension '{ext or Path(path).name}' "
                        f"(use one of {', '.join(sorted(EXTENSIONS))})")
    return EXTENSIONS[ext]


def available_memory() -> int:
    import psutil

    return psutil.virtual_memory().available


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_memory(nbytes: int, what: str, hint: str = "use a .tif or .png output, which stream") -> None:
    """Raise unless ``nbytes`` fits in the allowed share of the available RAM."""
    allowed = int(available_memory() * MEMORY_SHARE)
    if nbytes > allowed:
        raise SinkError(f"{what} needs {_gib(nbytes)} of memory, more than the {_gib(allowed)} allowed "
                        f"(half the available RAM); {hint}")


def check_capacity(fmt: Format, size: tuple[int, int], bits: int = 8, batch: int = 1,
                   directory: str | Path | None = None, compressed: bool = False) -> None:
    """Raise ``SinkError`` unless ``batch`` images of ``size = (H, W)`` fit in format ``fmt`` (and, for a
    raw TIFF, on the disk of ``directory``; a compressed one's size is not known in advance)."""
    H, W = size
    if bits not in fmt.bits:
        raise SinkError(f"{fmt.name.upper()} holds {' or '.join(map(str, fmt.bits))}-bit images, not {bits}-bit")
    if max(H, W) > fmt.max_side:
        raise SinkError(f"{W}x{H} is larger than {fmt.name.upper()} can hold "
                        f"(at most {fmt.max_side} pixels a side)")
    bytes_per_pixel = 3 * bits // 8
    if fmt.streams:
        check_memory(batch * min(H, STREAM_ROWS) * W * bytes_per_pixel, f"a band of rows {W} pixels wide",
                     hint="the image is too wide to stream")
    else:
        check_memory(batch * H * W * bytes_per_pixel, f"a {W}x{H} {fmt.name.upper()}")
    if fmt.name == "tiff" and directory is not None and not compressed:  # raw: the size is known
        folder = existing_ancestor(Path(directory))
        need, free = batch * H * W * bytes_per_pixel, free_disk(folder)
        if need > free:
            raise SinkError(f"a {W}x{H} TIFF needs {_gib(need)} on disk, only {_gib(free)} free in {folder}")


def check_tensor_capacity(size: tuple[int, int], batch: int = 1) -> None:
    """Raise ``SinkError`` unless a ``(batch, 3, H, W)`` float32 tensor fits in memory."""
    H, W = size
    check_memory(batch * 3 * H * W * 4, f"an in-memory {batch}x3x{H}x{W} float32 tensor")


def existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def free_disk(directory: str | Path) -> int:
    import shutil

    return shutil.disk_usage(existing_ancestor(Path(directory))).free


def check_writable(path: str | Path) -> None:
    """Raise ``SinkError`` unless a file can be created at ``path`` (parents are created later).

    Probes by creating and removing a temp file in the nearest existing folder, which also catches
    read-only file systems and permissions that ``os.access`` misreports for root.
    """
    path = Path(path)
    if path.is_dir():
        raise SinkError(f"output path {path} is a directory")
    folder = existing_ancestor(path.parent)
    if not folder.is_dir():
        raise SinkError(f"cannot write {path}: {folder} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".infd-probe-", dir=folder)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    os.unlink(probe)
