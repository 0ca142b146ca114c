"""Where rendered tiles go: an in-memory tensor, PNG (8/16-bit), JPEG, WebP, or a tiled (Big)TIFF.

A sink takes the engine's tiles ``(Region within the output, pixels (B, 3, h, w) in [-1, 1])`` in
row-major order. ``check(size, batch)`` says beforehand whether it can hold the output
(``SinkError``); ``consume(tiles, size, batch)`` writes it. File sinks quantise each tile as it
arrives, gather full-width bands of rows, and

- PNG: compress each band into the file (``png.PngWriter``), so memory holds one band;
- TIFF: cut bands into the file's own tiles and hand them to ``tifffile`` one by one, so the full
  image never sits in memory (BigTIFF beyond 4 GiB);
- JPEG/WebP: assemble the image in memory (Pillow needs it whole), within the format's limits.

Files are written to a hidden temp name beside the target and renamed only when complete, so an
error or an interrupt leaves no file at the output path.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from einops import rearrange

from infd.atomic import atomic_path
from infd.renderers.coords import Region

from .formats import FORMATS, SinkError, check_capacity, check_tensor_capacity, format_for_path
from .png import PngWriter

TIFF_TILE = 512  # the TIFF file's own tile side (a multiple of 16, as TIFF requires)
BIGTIFF_FROM = 2**32 - 2**26  # raw bytes beyond which classic TIFF offsets (32-bit) may overflow


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """``infd.checkpoint.atomic_path`` with the usual file mode (umask applied) instead of mkstemp's 0600."""
    with atomic_path(path) as temp:
        yield temp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)


def quantize(pixels: torch.Tensor, bits: int = 8) -> np.ndarray:
    """``(B, 3, h, w)`` in [-1, 1] -> ``(B, h, w, 3)`` uint8 (``((x + 1) * 127.5).round()``) or uint16."""
    scale = (2**bits - 1) / 2
    q = ((pixels.float().clamp(-1, 1) + 1) * scale).round()
    q = rearrange(q.to(torch.uint8 if bits == 8 else torch.int32), "b c h w -> b h w c").cpu().numpy()
    return q if bits == 8 else q.astype(np.uint16)


GRID_GAP_PX = 4  # white between the images of ``save_grid``


def save_grid(columns: list[np.ndarray], path: str | Path) -> Path:
    """PNG (written atomically) of images in rows and columns: ``columns`` holds per column ``(N, h, w, 3)``
    uint8 images (``quantize``), row ``i`` image ``i`` of each, top-aligned on white, ``GRID_GAP_PX`` apart."""
    from PIL import Image

    rows = {c.shape[0] for c in columns}
    if len(rows) != 1:
        raise ValueError(f"grid columns of different lengths: {sorted(rows)}")
    rows, height = rows.pop(), max(c.shape[1] for c in columns)
    width = sum(c.shape[2] for c in columns) + GRID_GAP_PX * (len(columns) - 1)
    canvas = np.full((rows * height + GRID_GAP_PX * (rows - 1), width, 3), 255, np.uint8)
    x = 0
    for images in columns:
        h, w = images.shape[1:3]
        for row in range(rows):
            y = row * (height + GRID_GAP_PX)
            canvas[y:y + h, x:x + w] = images[row]
        x += w + GRID_GAP_PX
    path = Path(path)
    with atomic_output(path) as temp:
        Image.fromarray(canvas).save(temp, format="PNG")
    return path


def iter_bands(tiles: Iterable[tuple[Region, np.ndarray]], size: tuple[int, int]
               ) -> Iterator[tuple[int, np.ndarray]]:
    """Join row-major tiles ``(region, (B, h, w, 3))`` into full-width bands ``(top, (B, rows, W, 3))``.

    Raises ``ValueError`` on tiles out of order or, at the end, an image with rows missing.
    """
    H, W = size
    top, left, band = 0, 0, None
    for region, px in tiles:
        if (region.top, region.left) != (top, left) or (band is not None and region.height != band.shape[1]):
            raise ValueError(f"tiles must arrive row by row: expected a tile at ({top}, {left}) "
                             f"of height {region.height if band is None else band.shape[1]}, got {region}")
        if band is None:
            band = np.empty((px.shape[0], region.height, W, 3), px.dtype)
        band[:, :, region.left:region.right] = px
        left = region.right
        if left == W:
            yield top, band
            top, left, band = top + region.height, 0, None
    if top != H:
        raise ValueError(f"incomplete image: {top} of {H} rows were rendered")


def tiff_tile_shape(size: tuple[int, int], tile: int = TIFF_TILE) -> tuple[int, int]:
    """The TIFF tile ``(th, tw)``: ``tile``, shrunk for small images, multiples of 16."""
    return tuple(min(tile, -(-side // 16) * 16) for side in size)


def iter_file_tiles(bands: Iterable[tuple[int, np.ndarray]], width: int, shape: tuple[int, int]
                    ) -> Iterator[np.ndarray]:
    """Cut bands ``(top, (rows, W, 3))`` of one image into row-major ``shape`` tiles, zero-padded at edges."""
    th, tw = shape
    pending = None  # rows received but not yet emitted, at most th - 1 + one band

    def row_of_tiles(rows):
        for left in range(0, width, tw):
            tile = np.zeros((th, tw, rows.shape[-1]), rows.dtype)
            part = rows[:, left:left + tw]
            tile[:part.shape[0], :part.shape[1]] = part
            yield tile

    for _, band in bands:
        pending = band if pending is None else np.concatenate([pending, band])
        while pending.shape[0] >= th:
            yield from row_of_tiles(pending[:th])
            pending = pending[th:]
    if pending is not None and pending.shape[0]:
        yield from row_of_tiles(pending)


class TensorSink:
    """Collect the output in a ``(B, 3, h, w)`` float32 tensor on ``device``.

    ``device=None`` keeps the pixels where they are rendered (the first tile's device, i.e. the
    field's), so a GPU render stays on the GPU; give ``"cpu"`` to gather a large render in RAM.
    ``check`` bounds the tensor by the available RAM, wherever it is collected.
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = None if device is None else torch.device(device)

    def check(self, size: tuple[int, int], batch: int = 1) -> None:
        check_tensor_capacity(size, batch)

    def consume(self, tiles, size: tuple[int, int], batch: int) -> torch.Tensor:
        """Place each tile ``(region, (B, 3, h, w))`` into the output; returns it ``(B, 3, H, W)``."""
        out = None
        for region, px in tiles:
            if out is None:
                out = torch.empty(batch, 3, *size, device=self.device or px.device)
            out[:, :, region.top:region.bottom, region.left:region.right] = px
        if out is None:
            raise ValueError("no tiles to collect")
        return out


class FileSink:
    """Write ``B`` images to ``paths`` (one per sample), format from the extension.

    Args:
        paths: output files, all of one format (``.png``, ``.jpg``/``.jpeg``, ``.webp``, ``.tif``/``.tiff``).
        bits: 8, or 16 for PNG and TIFF.
        quality: JPEG/WebP quality.
        tiff_tile: the TIFF file's tile side; tiff_compression: ``None`` (raw) or a ``tifffile`` codec.
    """

    def __init__(self, paths: list[str | Path] | str | Path, bits: int = 8, quality: int = 95,
                 tiff_tile: int = TIFF_TILE, tiff_compression: str | None = None, bigtiff: bool | None = None):
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        formats = {format_for_path(p).name for p in self.paths}
        if len(formats) != 1:
            raise SinkError(f"one sink writes one format, got {sorted(formats)}")
        self.format = FORMATS[formats.pop()]
        self.bits, self.quality = bits, quality
        self.tiff_tile, self.tiff_compression, self.bigtiff = tiff_tile, tiff_compression, bigtiff

    @property
    def max_batch(self) -> int | None:
        """TIFF takes one image per ``consume`` (its writer pulls tiles of one image)."""
        return 1 if self.format.name == "tiff" else None

    def check(self, size: tuple[int, int], batch: int = 1) -> None:
        if batch != len(self.paths):
            raise SinkError(f"{batch} images for {len(self.paths)} output paths")
        if self.max_batch is not None and batch > self.max_batch:
            raise SinkError(f"a {self.format.name.upper()} sink writes {self.max_batch} image at a time")
        check_capacity(self.format, size, self.bits, batch, directory=self.paths[0].parent)

    def consume(self, tiles, size: tuple[int, int], batch: int) -> list[Path]:
        """Quantise float tiles ``(region, (B, 3, h, w))`` and write them."""
        return self.write_quantized(((region, quantize(px, self.bits)) for region, px in tiles), size, batch)

    def write_quantized(self, tiles: Iterable[tuple[Region, np.ndarray]], size: tuple[int, int],
                        batch: int) -> list[Path]:
        """Write row-major integer tiles ``(region, (B, h, w, 3))``; each file appears only when complete."""
        self.check(size, batch)
        bands = iter_bands(tiles, size)
        try:
            with contextlib.ExitStack() as stack:
                temps = [stack.enter_context(atomic_output(p)) for p in self.paths]
                writer = {"png": self._write_png, "tiff": self._write_tiff}.get(self.format.name, self._write_pillow)
                writer(temps, bands, size)
        except OSError as err:  # a full disk or quota, an unplugged drive: the temp files are gone already
            reason = err.strerror or str(err).splitlines()[0]
            raise SinkError(f"writing {self.paths[0]} failed: {reason}; no partial file was left") from None
        return self.paths

    def _write_png(self, temps: list[Path], bands, size) -> None:
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(open(t, "wb")) for t in temps]
            writers = [PngWriter(f, *size, bits=self.bits) for f in files]
            for _, band in bands:
                for writer, rows in zip(writers, band):
                    writer.write_rows(rows)
            for writer in writers:
                writer.close()

    def _write_pillow(self, temps: list[Path], bands, size) -> None:
        from PIL import Image

        images = np.empty((len(temps), *size, 3), np.uint8)
        for top, band in bands:
            images[:, top:top + band.shape[1]] = band
        kind = {"jpeg": "JPEG", "webp": "WEBP"}[self.format.name]
        for temp, image in zip(temps, images):
            Image.fromarray(image).save(temp, format=kind, quality=self.quality)

    def _write_tiff(self, temps: list[Path], bands, size) -> None:
        import tifffile

        shape = tiff_tile_shape(size, self.tiff_tile)
        dtype = np.uint8 if self.bits == 8 else np.uint16
        raw_bytes = size[0] * size[1] * 3 * np.dtype(dtype).itemsize
        bigtiff = raw_bytes > BIGTIFF_FROM if self.bigtiff is None else self.bigtiff
        tiles = iter_file_tiles(((top, band[0]) for top, band in bands), size[1], shape)
        tifffile.imwrite(temps[0], data=tiles, shape=(*size, 3), dtype=dtype, tile=shape, photometric="rgb",
                         compression=self.tiff_compression, bigtiff=bigtiff, metadata=None)
