"""Encoded image bytes -> an RGB PIL image, for the files people actually have.

Decoding happens in two steps so the patch sampler can choose a reduced JPEG decode from the
header alone: ``open_image`` reads only the header (format whitelist, decompression-bomb limit),
``finish_decode`` loads the pixels, applies the EXIF orientation and converts to 8-bit RGB:

- ``L``, ``1``, ``P`` (palette), ``CMYK`` (Adobe-inverted JPEGs included), ``YCbCr``: converted
  by Pillow (no ICC colour management);
- alpha (``LA``, ``RGBA``, ``PA``, premultiplied modes, palette or grey with a transparent
  colour): composited on a white or black background (``DecodeConfig.background``);
- 16-bit grey (``I;16*``, or ``I`` holding 16-bit values) is scaled by 255/65535 with rounding
  (not clipped); 16-bit RGB(A) PNG/TIFF are reduced to 8 bits by Pillow; ``F`` is taken as 0..1.

Every failure (empty, truncated, not an image, unsupported mode, too many pixels) raises
``DecodeError`` with a short reason; the data pipeline counts and skips those samples.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff")
# Only these decoders may run on untrusted bytes (no EPS/ghostscript, no exotic plugins).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "TIFF")  # JPEG also opens MPO (camera) files
JPEG_FORMATS = ("JPEG", "MPO")
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_BACKGROUND = {"white": (255, 255, 255), "black": (0, 0, 0)}


class DecodeError(ValueError):
    """Bytes that do not decode to an image (corrupt, truncated, empty, too large, unsupported)."""


@dataclass
class DecodeConfig:
    """How encoded bytes become RGB.

    background: colour under transparent pixels ("white" or "black").
    max_pixels: decompression-bomb limit on width x height, checked from the header before any
        pixel is decoded (default 100 MP: three 8K frames). Pillow's own hard stop at
        2 x ``Image.MAX_IMAGE_PIXELS`` (~179 MP) applies on top unless an application raises it.
    max_file_mb: shard members (encoded files) above this size are skipped and counted before any of
        their bytes is read (a sparse member can claim gigabytes in a tiny shard).
    cache_mb: decoded RGB pixels each data worker keeps (``DecodeCache``, least recently used out), so
        the many patches drawn from one photo pay its decode once; 0 decodes every time. A photo
        sits in the cache at each draft scale it was decoded at (a 2560 x 1600 JPEG: 12 MB at full
        size). Decoding is deterministic, so samples are bitwise the same with or without it.
    """

    background: Literal["white", "black"] = "white"
    max_pixels: int = 100_000_000
    cache_mb: float = 0.0
    max_file_mb: float = 512.0  # encoded bytes of one shard member; larger members are skipped unread

    def __post_init__(self):
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")
        if not self.cache_mb >= 0:  # also refuses NaN
            raise ValueError(f"cache_mb must be >= 0, got {self.cache_mb}")
        if not self.max_file_mb > 0:
            raise ValueError(f"max_file_mb must be positive, got {self.max_file_mb}")

    @property
    def max_file_bytes(self) -> int | None:
        return None if self.max_file_mb == float("inf") else int(self.max_file_mb * 2**20)


class DecodeCache:
    """Decoded images by (content digest, draft scale, background), up to ``max_mb`` of pixels.

    Keys hash the encoded bytes, so equal files share an entry whatever shard they come from. Entries
    are returned as stored: callers must not modify them in place (resizing and cropping make copies).
    """

    def __init__(self, max_mb: float):
        self.max_bytes = int(max_mb * 2**20)
        self.entries: OrderedDict[tuple, Image.Image] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    @staticmethod
    def digest(data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=16).digest()

    def decode(self, img: Image.Image, digest: bytes, scale: int, background: str) -> Image.Image:
        """``finish_decode(img, background)`` of an opened image (``scale``: its draft divisor), cached."""
        key = (digest, scale, background)
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        rgb = finish_decode(img, background)
        size = rgb.width * rgb.height * len(rgb.getbands())
        if size <= self.max_bytes:
            self.entries[key] = rgb
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self.entries.popitem(last=False)
                self.bytes -= old.width * old.height * len(old.getbands())
        return rgb


def open_image(data: bytes, max_pixels: int = DecodeConfig.max_pixels) -> Image.Image:
    """Read only the header of ``data``; raise ``DecodeError`` if it is no image or too large."""
    if not data:
        raise DecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise DecodeError("not a recognised image (jpeg, png, webp, bmp, tiff)") from None
    except Image.DecompressionBombError as err:
        raise DecodeError(f"decompression bomb: {err}") from None
    except Exception as err:  # noqa: BLE001 - any header parse failure is a bad sample
        raise DecodeError(f"unreadable header: {type(err).__name__}: {err}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise DecodeError(f"image header claims an empty size {width}x{height}")
    if width * height > max_pixels:
        raise DecodeError(f"decompression bomb: image is {width}x{height} = {width * height / 1e6:.1f} MP, "
                          f"above max_pixels={max_pixels / 1e6:.1f} MP")
    return img


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) of an opened image; 1 when absent or unreadable."""
    try:
        value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        return 1
    return value if value in range(1, 9) else 1


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` as displayed, i.e. after the EXIF orientation."""
    width, height = img.size
    return (height, width) if exif_orientation(img) in (5, 6, 7, 8) else (width, height)


def request_draft(img: Image.Image, min_size: tuple[int, int]) -> int:
    """Ask a JPEG to decode at 1/2, 1/4 or 1/8 scale, staying at least ``min_size`` (displayed
    ``(width, height)``). Returns the scale divisor (1 = full size; always 1 for other formats)."""
    if img.format not in JPEG_FORMATS:
        return 1
    width, height = min_size
    if exif_orientation(img) in (5, 6, 7, 8):
        width, height = height, width
    before = img.size[0]
    img.draft(img.mode, (max(1, width), max(1, height)))
    return max(1, round(before / img.size[0]))


def _scale_16bit(img: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer / float) grey -> 8-bit ``L``, rounding rather than clipping."""
    values = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        values = values * 255.0  # float images are taken as 0..1
    else:
        values = values / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(img: Image.Image, background: str) -> Image.Image:
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        img, mode = _scale_16bit(img), "L"
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, _BACKGROUND[background])
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode == "RGB":
        return img
    if mode in ("1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB")
    raise DecodeError(f"unsupported image mode {mode}")


def finish_decode(img: Image.Image, background: str = "white") -> Image.Image:
    """Decode the pixels of an opened image: EXIF orientation applied, 8-bit RGB."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd metadata; the pixels decide
            img.load()
            orientation = exif_orientation(img)
            rgb = _to_rgb(img, background)
            if orientation in _TRANSPOSE:
                rgb = rgb.transpose(_TRANSPOSE[orientation])
    except DecodeError:
        raise
    except Exception as err:  # noqa: BLE001 - truncated/corrupt data surfaces as many types
        raise DecodeError(f"corrupt image data: {type(err).__name__}: {err}") from None
    return rgb


def decode_image(data: bytes, config: DecodeConfig | None = None) -> Image.Image:
    """Encoded bytes -> RGB PIL image (EXIF orientation applied), or ``DecodeError``."""
    config = config or DecodeConfig()
    return finish_decode(open_image(data, config.max_pixels), config.background)
