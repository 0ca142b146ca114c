"""The multiscale patch sampler of the method, and a whole-image sampler for evaluation.

For one photo (``n`` = side of its square, see below):

- encoder input ``inp``: the whole square resized (antialiased) to ``S x S``;
- ground truth ``gt``: the square resized to ``r x r`` with ``P <= r <= min(n, max_size)``
  (``r`` uniform in size or in log-size), then a random ``P x P`` crop at ``(top, left)``;
- ``coord = make_coord((r, r), Region(top, left, P, P))`` and ``cell = (2/r, 2/r)``: the pixel
  centres of that crop in the virtual ``r x r`` image, so the renderer must produce exactly ``gt``.

Non-square photos become square first (``square``): ``center_crop`` (the centred n x n, n = short
side), ``random_crop`` (an n x n window at a random offset) or ``pad`` (n = long side, the photo
centred on a black or white canvas). The square is a box in the decoded image, never a copy. Photos with ``n < P`` are upsampled to ``r = P`` or skipped
(``small_images``). The optional horizontal flip applies to the square, hence to both ``inp`` and
``gt``; ``coord`` always describes the crop in the (flipped) ``r x r`` image. ``augment``
(``data.augment``) adds colour jitter, channel permutation, quarter turns and flips the same way:
the crop is read from its pre-image and transformed, so ``coord`` (context included) is unchanged.

Resizing: ``gt`` uses ``data.resize.resize_region`` (Lanczos-3, float, computes only the crop and
equals the crop of the full resize bit for bit); ``inp`` uses Pillow's Lanczos. Fast path
(``fast_decode``, on by default): JPEGs are decoded at 1/2, 1/4 or 1/8 scale in the DCT domain
(Pillow ``draft``) when the result stays at least ``max(r, S)`` pixels on the square's side;
images still more than 4x larger than that are box-averaged by an integer factor first; ``inp``
uses Pillow's ``reducing_gap=1.5``. ``gt`` is then the exact resize of that reduced square, whose
box is mapped with the reduction's exact (possibly fractional) scale, so nothing shifts.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from PIL import Image

from infd.renderers.coords import Region, make_cell, make_coord

from .augment import AugmentConfig, apply_colour, apply_geometry, sample_params, source_region
from .decode import DecodeCache, DecodeConfig, finish_decode, open_image, oriented_size, request_draft
from .resize import PilBox, resize_pil, resize_region

_FILL = {"black": (0, 0, 0), "white": (255, 255, 255)}
# Fast path for the encoder input: Pillow box-averages by int(scale / 1.5) before its Lanczos
# (>= 41 dB PSNR against the exact Lanczos on the benchmark photos, 2-4x faster).
_FAST_REDUCING_GAP = 1.5


class SkipSample(Exception):
    """A readable image that the sampler's policy drops (e.g. smaller than the patch)."""


@dataclass
class PatchConfig:
    """What one training (or evaluation) sample looks like.

    encoder_size: S, side of the encoder input.
    patch_size: P, side of the ground-truth crop.
    scale_dist: distribution of r on [P, r_max]: "uniform" (integers) or "log_uniform".
    max_size: cap on r (the paper: 1024 = 4 S); None = the photo's native size.
    square: how non-square photos become square: "center_crop", "random_crop" or "pad".
    pad_color: canvas colour for "pad".
    flip: random horizontal flip (p = 0.5) of input and target together. The paper uses none.
    small_images: photos smaller than P: "upsample" (r = P) or "skip".
    fast_decode: reduced JPEG decode / box pre-reduction before the exact resize (see module doc).
    kernel: "lanczos" or "bicubic" (both antialiased).
    whole_size: whole-image mode only: side of ``gt`` (None = native square).
    context: query pixels of real context on every side of the crop (mirrored past the r x r image, as
        the rendering engine pads): ``coord`` covers ``(P + 2 context)^2`` queries, ``gt`` stays P x P and
        the loss sees the centre. Stage 1 sets it to the renderer's radius when None, so a patch is
        rendered as the same pixels of a full render are.
    augment: colour and geometry augmentation (``data.augment``; all off by default), drawn after
        the scale, crop and flip and applied identically to ``inp`` and ``gt``; patch mode only.
    crop_positions: where crops sit in the r x r image. "uniform": ``top, left`` uniform on
        ``[0, r - P]``, which covers a pixel on the image's edge P times less often than an inner one
        (the outer ring of the field then learns from few patches and renders as a frame). "edge_clamped":
        drawn uniform on ``[-(P - 1), r - 1]`` and clamped to ``[0, r - P]``, so edge pixels are covered
        as often as inner ones (pixels within P of an edge at most twice as often).
    """

    encoder_size: int = 256
    patch_size: int = 256
    scale_dist: Literal["uniform", "log_uniform"] = "uniform"
    max_size: int | None = 1024
    square: Literal["center_crop", "random_crop", "pad"] = "center_crop"
    pad_color: Literal["black", "white"] = "black"
    flip: bool = False
    small_images: Literal["upsample", "skip"] = "upsample"
    fast_decode: bool = True
    kernel: Literal["lanczos", "bicubic"] = "lanczos"
    whole_size: int | None = None
    context: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    crop_positions: Literal["uniform", "edge_clamped"] = "uniform"

    def __post_init__(self):
        if self.context is not None and self.context < 0:
            raise ValueError(f"context must be >= 0, got {self.context}")
        for name in ("encoder_size", "patch_size", "max_size", "whole_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_size is not None and self.max_size < self.patch_size:
            raise ValueError(f"max_size {self.max_size} is below patch_size {self.patch_size}")


def square_side(width: int, height: int, square: str) -> int:
    """Side n of the square a ``width x height`` photo becomes."""
    return max(width, height) if square == "pad" else min(width, height)


def sample_scale(n: int, config: PatchConfig, rng: random.Random) -> int:
    """r in [P, min(n, max_size)] from ``config.scale_dist``; ``P`` when ``n < P`` (upsampling)."""
    P = config.patch_size
    r_max = max(P, n if config.max_size is None else min(n, config.max_size))
    if config.scale_dist == "uniform":
        return rng.randint(P, r_max)
    r = round(math.exp(rng.uniform(math.log(P), math.log(r_max))))
    return min(max(r, P), r_max)


def crop_position(r: int, P: int, positions: str, rng: random.Random) -> int:
    """Top (or left) of a ``P``-pixel crop in ``r`` pixels by ``PatchConfig.crop_positions``."""
    if positions == "edge_clamped":
        return min(max(rng.randint(-(P - 1), r - 1), 0), r - P)
    return rng.randint(0, r - P)


def square_box(width: int, height: int, square: str, offset: float = 0.5) -> tuple[int, int, int]:
    """``(left, top, n)`` of the square in a ``width x height`` photo; for "pad" the square reaches
    outside the photo (negative left/top) and those pixels read as the pad colour."""
    n = square_side(width, height, square)
    frac = offset if square == "random_crop" else 0.5
    if square == "pad":
        return -((n - width) // 2), -((n - height) // 2), n
    return round(frac * (width - n)), round(frac * (height - n)), n


def _reduce(img: Image.Image, box: PilBox, target: int) -> tuple[Image.Image, PilBox]:
    """PilBox-average the pixels under ``box`` by an integer factor while the square keeps at least
    2 ``target`` pixels a side (fast path); returns the new image and the box mapped into it."""
    factor = int((box[2] - box[0]) // (2 * target))
    if factor < 2:
        return img, box
    outer = (max(math.floor(box[0]), 0), max(math.floor(box[1]), 0),
             min(math.ceil(box[2]), img.width), min(math.ceil(box[3]), img.height))
    small = img.reduce(factor, box=outer)  # pixel j averages [outer + j f, outer + (j + 1) f)
    left, top, right, bottom = box
    x0, y0 = outer[0], outer[1]
    return small, ((left - x0) / factor, (top - y0) / factor, (right - x0) / factor, (bottom - y0) / factor)


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.div_(127.5).sub_(1.0)  # 0..255 -> [-1, 1]


def decode_square(img: Image.Image, config: PatchConfig, decode: DecodeConfig, target: int | None,
                  offset: float = 0.5, cache: tuple[DecodeCache, bytes] | None = None) -> tuple[Image.Image, PilBox]:
    """Decode an opened image (``open_image``) and return ``(image, box)``: the square as a box
    (fractional after a reduced decode) in the decoded image. On the fast path the image is
    reduced while the square keeps at least ``target`` pixels a side (``None``: full size).
    ``cache``: ``(DecodeCache, digest of the encoded bytes)`` to decode through."""
    width, height = oriented_size(img)
    left, top, n = square_box(width, height, config.square, offset)
    scale = 1
    if config.fast_decode and target is not None and n >= 2 * target:  # draft helps from a factor 2
        # decoded pixel j covers native pixels [j s, (j + 1) s): the box scales by 1/s exactly
        scale = request_draft(img, (math.ceil(width * target / n), math.ceil(height * target / n)))
    img = finish_decode(img, decode.background) if cache is None else cache[0].decode(img, cache[1], scale,
                                                                                       decode.background)
    box = (left / scale, top / scale, (left + n) / scale, (top + n) / scale)
    if config.fast_decode and target is not None:
        img, box = _reduce(img, box, target)
    return img, box


def _open_checked(data: bytes, config: PatchConfig, decode: DecodeConfig) -> tuple[Image.Image, int]:
    """Open the header; ``(image, square side n)``, or ``SkipSample`` by the small-image policy."""
    img = open_image(data, decode.max_pixels)
    width, height = oriented_size(img)
    n = square_side(width, height, config.square)
    if n < config.patch_size and config.small_images == "skip":
        raise SkipSample(f"image {width}x{height} is smaller than the patch size {config.patch_size}")
    return img, n


def sample_patch(data: bytes, config: PatchConfig, decode: DecodeConfig, rng: random.Random,
                 cache: DecodeCache | None = None) -> dict:
    """One multiscale training sample from encoded bytes.

    Returns ``inp (3, S, S)`` and ``gt (3, P, P)`` float32 in [-1, 1], ``coord (P + 2c, P + 2c, 2)``
    (``c = context``)
    float32 (y, x), ``cell (2,)`` float32 = (2/r, 2/r), ``size`` (r, int) and ``crop``
    ``(2,)`` int64 = (top, left) of the crop in the (flipped, augmented) r x r image. Raises ``DecodeError`` or
    ``SkipSample``. ``cache`` keeps decoded photos between calls (bitwise the same samples).
    """
    S, P = config.encoder_size, config.patch_size
    img, n = _open_checked(data, config, decode)
    # all random draws happen before decoding, in a fixed order, so fast and exact paths agree
    r = sample_scale(n, config, rng)
    top = crop_position(r, P, config.crop_positions, rng)
    left = crop_position(r, P, config.crop_positions, rng)
    offset = rng.random()
    flip = config.flip and rng.random() < 0.5
    params = sample_params(config.augment, rng)
    params = replace(params, hflip=params.hflip != flip)  # the flip composes with the augmentation's
    img, box = decode_square(img, config, decode, max(r, S), offset,
                             None if cache is None else (cache, cache.digest(data)))
    fill = _FILL[config.pad_color]
    inp = resize_pil(img, S, box, config.kernel, _FAST_REDUCING_GAP if config.fast_decode else None, fill)
    # the crop at (top, left) of the transformed r x r image is the transform of the crop at the
    # pre-image (e.g. a flipped crop at `left` is the mirror of the unflipped one at r - left - P)
    source = source_region(Region(top, left, P, P), r, params)
    gt = resize_region(img, (r, r), source, config.kernel, box, fill)
    inp, gt = apply_geometry(inp, params), apply_geometry(gt, params)
    return {
        "inp": apply_colour(_to_unit(inp.contiguous()), params),
        "gt": apply_colour(_to_unit(gt.contiguous()), params),
        "coord": make_coord((r, r), Region(top, left, P, P), margin=config.context or 0),
        "cell": make_cell((r, r)),
        "size": r,
        "crop": torch.tensor([top, left], dtype=torch.int64),
    }


def sample_whole(data: bytes, config: PatchConfig, decode: DecodeConfig) -> dict:
    """One evaluation sample: ``inp (3, S, S)`` and the whole square ``gt (3, G, G)`` in [-1, 1]
    (``G`` = ``whole_size`` or the native side), ``cell (2,)`` = (2/G, 2/G) and ``size`` = G.
    Coordinates for a full render are ``renderers.coords.make_query((G, G))``."""
    S, G = config.encoder_size, config.whole_size
    img = _open_checked(data, config, decode)[0]
    img, box = decode_square(img, config, decode, None if G is None else max(G, S))
    G = G or round(box[2] - box[0])
    fill = _FILL[config.pad_color]
    inp = resize_pil(img, S, box, config.kernel, _FAST_REDUCING_GAP if config.fast_decode else None, fill)
    gt = resize_pil(img, G, box, config.kernel, fill=fill)
    return {"inp": _to_unit(inp), "gt": _to_unit(gt), "cell": make_cell((G, G)), "size": G}
