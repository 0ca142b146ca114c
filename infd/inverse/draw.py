"""The layout drawn over a result: each term's box outlined in its own colour, labelled with its name."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infd.renderers.coords import FractionalWindow

COLOURS = ((255, 64, 64), (64, 160, 255), (64, 220, 96), (255, 200, 0), (220, 96, 255), (0, 220, 220))


def draw_layout(image: np.ndarray, boxes: Sequence[FractionalWindow], labels: Sequence[str],
                line_px: int | None = None):
    """``image (H, W, 3) uint8`` with ``boxes`` outlined and labelled; returns a new ``PIL.Image``.

    Box edges are rounded to pixels of the image (``FractionalWindow.pixels``); the line width defaults to about
    1/200 of the image's shorter side (at least 1 pixel).
    """
    from PIL import Image, ImageDraw, ImageFont

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    H, W = image.shape[:2]
    out = Image.fromarray(image).copy()
    draw = ImageDraw.Draw(out)
    width = line_px or max(1, min(H, W) // 200)
    font = ImageFont.load_default()
    for i, (box, label) in enumerate(zip(boxes, labels)):
        colour = COLOURS[i % len(COLOURS)]
        top, left, bottom, right = box.pixels((H, W))
        draw.rectangle([left, top, max(left, right - 1), max(top, bottom - 1)], outline=colour, width=width)
        text_left, text_top = left + width + 1, top + width + 1
        x0, y0, x1, y1 = draw.textbbox((text_left, text_top), label, font=font)
        draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], fill=(0, 0, 0))
        draw.text((text_left, text_top), label, fill=colour, font=font)
    return out
