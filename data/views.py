"""Random square views of a photo for the latent cache: many distinct encoder inputs per photo.

A view is a square crop of side ``c`` source pixels, ``c`` log-uniform between the encoder size ``S``
and the photo's shorter side (the whole height or width), at a uniform position anywhere in the photo,
resized to ``S x S`` (antialiased, as stage 1's ``inp``), then augmented (``data.augment``: the
configured flips, quarter turns and colour jitter). The photo is decoded once for all its views.

Draws come from ``random.Random(f"{seed}/{key}")``: a photo's views depend only on the seed and its
key, not on the order, the worker or the other photos, so a rerun writes the same latents.
"""
from __future__ import annotations

import dataclasses
import math
import random

import torch

from .augment import AugmentConfig, apply_colour, apply_geometry, sample_params
from .decode import DecodeConfig, finish_decode, open_image, oriented_size
from .resize import resize_pil


def view_rng(seed: int, key: str) -> random.Random:
    return random.Random(f"{seed}/{key}")


def draw_view(width: int, height: int, encoder_size: int, rng: random.Random) -> tuple[int, int, int]:
    """``(left, top, side)`` of one view in a ``width x height`` photo (module doc)."""
    n = min(width, height)
    side = n if n <= encoder_size else round(math.exp(rng.uniform(math.log(encoder_size), math.log(n))))
    side = min(max(side, min(encoder_size, n)), n)
    return rng.randint(0, width - side), rng.randint(0, height - side), side


def sample_views(data: bytes, count: int, encoder_size: int, rng: random.Random,
                 augment: AugmentConfig | None = None, decode: DecodeConfig | None = None,
                 kernel: str = "lanczos") -> list[dict]:
    """``count`` views of the encoded photo ``data``: ``{"inp" (3, S, S) in [-1, 1], "view": [left, top,
    side] in source pixels, "augment": the drawn parameters}``. All draws happen before decoding."""
    decode = decode or DecodeConfig()
    augment = augment or AugmentConfig()
    img = open_image(data, decode.max_pixels)
    width, height = oriented_size(img)
    draws = []
    for _ in range(count):
        box = draw_view(width, height, encoder_size, rng)
        draws.append((box, sample_params(augment, rng)))
    img = finish_decode(img, decode.background)
    views = []
    for (left, top, side), params in draws:
        inp = resize_pil(img, encoder_size, (left, top, left + side, top + side), kernel)
        inp = apply_colour(apply_geometry(inp, params).contiguous().div_(127.5).sub_(1.0), params)
        views.append({"inp": inp, "view": [left, top, side], "augment": dataclasses.asdict(params)})
    return views
