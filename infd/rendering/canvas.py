"""Canvases of any aspect ratio: how ``--size`` maps to latents, and decoding latents larger than trained.

``--canvas`` (``CANVAS_MODES``):

- ``stretch``: one latent of the trained size, its square field rendered on the requested grid (a
  non-square output is a stretched square image).
- ``crop``: one latent of the trained size rendered as a square of the output's longer side, of which
  the centred window of the requested aspect is written (``crop_region``).
- ``grow``: a latent canvas of the output's aspect, its shorter side ``canvas_scale`` x the trained
  size, sampled jointly in windows of the trained size (``infd.diffusion.windows``) and decoded in
  overlapping tiles (``decode_canvas``).

A ``grow`` latent is decoded in overlapping windows of the trained size (``infd.models.tiled_decode``).
No torch import here: requests are checked before torch loads.
"""
from __future__ import annotations

from dataclasses import dataclass

from infd.diffusion.sampling import WINDOW_MODES
from infd.renderers.windows import FractionalWindow, Region

CANVAS_MODES = ("stretch", "crop", "grow")


@dataclass(frozen=True)
class CanvasSpec:
    """``--canvas`` and its settings: ``scale`` (grow: shorter latent side / trained side), the sampler's
    windows (``window_mode``, ``window_stride`` for overlap, ``window_batch`` per backbone call) and label
    boxes ``labels`` (fractional box of the output, class label or ``None``)."""

    mode: str = "stretch"
    scale: float = 1.0
    window_mode: str = "overlap"
    window_stride: int | None = None
    window_batch: int = 8
    labels: tuple[tuple[FractionalWindow, int | None], ...] = ()

    def __post_init__(self):
        if self.mode not in CANVAS_MODES:
            raise ValueError(f"--canvas must be one of {', '.join(CANVAS_MODES)}, got '{self.mode}'")
        if not 1 <= self.scale <= 64:
            raise ValueError(f"--canvas-scale must be a number in [1, 64], got {self.scale}")
        if self.window_mode not in WINDOW_MODES:
            raise ValueError(f"--window-mode must be one of {', '.join(WINDOW_MODES)}, got '{self.window_mode}'")
        if self.window_stride is not None and self.window_stride < 1:
            raise ValueError(f"--window-stride must be at least 1 latent position, got {self.window_stride}")
        if self.window_batch < 1:
            raise ValueError(f"--window-batch must be at least 1, got {self.window_batch}")
        if self.labels and self.mode != "grow":
            raise ValueError("--labels needs --canvas grow (label boxes are denoised in windows)")

    @property
    def joint(self) -> bool:
        return self.mode == "grow"


def canvas_latent_size(size: tuple[int, int], latent_size: int, canvas_scale: float = 1.0,
                       multiple: int = 1) -> tuple[int, int]:
    """``(h, w)`` of a ``grow`` latent for an output of ``size = (H, W)``: the shorter side
    ``round(canvas_scale * latent_size)``, the longer one in the output's aspect, both rounded to
    ``multiple`` (and never below the trained size)."""
    H, W = size
    short = max(round(canvas_scale * latent_size), latent_size)

    def side(n: float) -> int:
        return max(latent_size, int(round(n / multiple)) * multiple)

    if H <= W:
        return side(short), side(short * W / H)
    return side(short * H / W), side(short)


def crop_region(size: tuple[int, int], region: Region | None) -> tuple[tuple[int, int], Region]:
    """``crop``: the square virtual size (the longer side) and the window of it that is the output of
    ``size`` (``region``, if given, is a window of the output and moves with it)."""
    H, W = size
    S = max(H, W)
    top, left = (S - H) // 2, (S - W) // 2
    if region is None:
        return (S, S), Region(top, left, H, W)
    return (S, S), Region(top + region.top, left + region.left, region.height, region.width)
