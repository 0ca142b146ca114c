"""A streaming PNG writer for 8- and 16-bit RGB: rows go in top to bottom, memory stays one band.

Pillow cannot write 16-bit RGB PNGs and wants the whole image in memory, so the PNG sink writes the
format itself (PNG spec, ISO/IEC 15948): signature, ``IHDR``, ``IDAT`` chunks holding one zlib stream
of filtered scanlines, ``IEND``. Every scanline uses filter type 2 ("Up": each byte minus the byte
above it, modulo 256), which numpy computes for a whole band at once.
"""
from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 2**31 - 1  # PNG stores width and height as 31-bit integers
FILTER_UP = 2
CHUNK_BYTES = 1 << 20  # flush compressed data in IDAT chunks of about this size


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class PngWriter:
    """Write an ``height x width`` RGB PNG to ``file`` band by band (``write_rows``), then ``close``."""

    def __init__(self, file: BinaryIO, height: int, width: int, bits: int = 8, level: int = 6):
        if bits not in (8, 16):
            raise ValueError(f"PNG bit depth must be 8 or 16, got {bits}")
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
            raise ValueError(f"PNG sides must be 1..{MAX_SIDE}, got {height}x{width}")
        self.file, self.height, self.width, self.bits = file, height, width, bits
        self.rows_written = 0
        self.dtype = np.dtype(">u2") if bits == 16 else np.dtype("u1")  # PNG samples are big-endian
        self._previous = np.zeros(width * 3 * self.dtype.itemsize, np.uint8)  # the row above row 0
        self._zlib = zlib.compressobj(level)
        self._pending = bytearray()
        colour_type_rgb = 2
        header = struct.pack(">IIBBBBB", width, height, bits, colour_type_rgb, 0, 0, 0)
        file.write(SIGNATURE + _chunk(b"IHDR", header))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append ``rows (n, width, 3)`` of unsigned integers of the writer's bit depth."""
        n = rows.shape[0]
        if rows.shape[1:] != (self.width, 3):
            raise ValueError(f"rows must be (n, {self.width}, 3), got {rows.shape}")
        if self.rows_written + n > self.height:
            raise ValueError(f"too many rows: {self.rows_written + n} > {self.height}")
        raw = np.ascontiguousarray(rows, dtype=self.dtype).view(np.uint8).reshape(n, -1)  # (n, stride)
        above = np.concatenate([self._previous[None], raw[:-1]])
        lines = np.empty((n, raw.shape[1] + 1), np.uint8)
        lines[:, 0] = FILTER_UP
        np.subtract(raw, above, out=lines[:, 1:])  # uint8 arithmetic wraps modulo 256
        self._previous = raw[-1].copy()
        self.rows_written += n
        self._pending += self._zlib.compress(lines.tobytes())
        if len(self._pending) >= CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.file.write(_chunk(b"IDAT", bytes(self._pending)))
            self._pending.clear()

    def close(self) -> None:
        """Finish the zlib stream and write ``IEND``; every row must have been written."""
        if self.rows_written != self.height:
            raise ValueError(f"PNG incomplete: {self.rows_written} of {self.height} rows written")
        self._pending += self._zlib.flush()
        self._flush()
        self.file.write(_chunk(b"IEND", b""))
