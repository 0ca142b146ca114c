"""Conditions at any scale: each term renders its box of the output at its own resolution and scores it.

A term has a ``box`` of the virtual output (a ``FractionalWindow``), the ``resolution (h, w)`` at which that
box is rendered (``Region.from_fractions``: its own pixel grid, cells ``box extent / resolution``), a
``weight`` and a loss ``(B, 3, h, w) -> (B,)``:

- ``ClipText``: ``1 - cos(E_img(render), E_txt(prompt))``, CLIP's cosine distance to the prompt
  (averaged over random cutouts when ``cutouts > 0``), as in GLIDE's CLIP guidance;
- ``Pixels``: ``mean((render - y)^2)``, matching a (low-resolution) image ``y``: super-resolution when
  the box is rendered at the image's size and the result at a larger one;
- ``MaskedPixels``: ``sum(m (render - y)^2) / sum(m)`` on the known pixels ``m = 1`` (inpainting and,
  with a box inside a larger output, outpainting).

``ConditionTerms`` holds the terms; ``losses(renderer, phi)`` gives each term's ``(B,)`` loss and
``total`` their weighted sum, ``sum_k w_k L_k``, which the solvers minimise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infd.renderers.coords import FractionalWindow, Region, check_resolution
from infd.renderers.region import render_region

from .clip import ClipAdapter
from .layout import MAX_TERM_SIDE, Layout, LayoutError, TermSpec


class Term:
    """A condition on ``box`` rendered at ``resolution``; subclasses define ``loss``."""

    kind = "term"
    default_scale = 1.0  # guided solver: the condition scale s of this kind unless one is given for all

    def __init__(self, name: str, box: FractionalWindow, resolution: tuple[int, int], weight: float = 1.0):
        self.name, self.box, self.weight = name, box, float(weight)
        self.resolution = check_resolution(resolution)

    def render(self, renderer: nn.Module, phi: torch.Tensor) -> torch.Tensor:
        """The term's view of the output, ``(B, 3, h, w)`` from ``phi (B, C, h_phi, w_phi)``.

        The box is a region of the virtual image its own grid spans, so it is rendered with the
        renderer's margin (as much of it as the image holds) and cropped: its pixels are those of a
        render of the whole image at the same pixel size. Differentiable in ``phi`` when ``renderer`` is a
        module (a ``FastCLIF`` from ``inference_renderer`` computes no gradients).
        """
        return render_region(renderer, phi, *Region.from_fractions(self.box, self.resolution))

    def loss(self, rgb: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ClipText(Term):
    """CLIP cosine distance of the rendered box to ``prompt``; ``cutouts`` random crops per call."""

    kind = "clip_text"
    default_scale = 1000.0  # not measured (no CLIP weights offline): the order of the pixel terms'

    def __init__(self, name: str, box: FractionalWindow, resolution: tuple[int, int], clip: ClipAdapter,
                 prompt: str, weight: float = 1.0, cutouts: int = 0, seed: int = 0):
        super().__init__(name, box, resolution, weight)
        self.clip, self.prompt, self.cutouts = clip, prompt, int(cutouts)
        self.text = clip.encode_text([prompt])[0]  # (D,), unit norm
        self.generator = torch.Generator().manual_seed(seed)  # cutout positions (CPU)

    def similarity(self, rgb: torch.Tensor, cutouts: int = 0) -> torch.Tensor:
        """Cosine similarity ``(B,)`` of ``rgb (B, 3, h, w)`` to the prompt (mean over cutouts)."""
        emb = self.clip.encode_images(rgb, cutouts, self.generator)  # (B, K, D)
        return (emb @ self.text.to(emb)).mean(dim=1)

    def loss(self, rgb: torch.Tensor) -> torch.Tensor:
        return 1 - self.similarity(rgb, self.cutouts)


class Pixels(Term):
    """Mean squared error to ``target (3, h, w)`` in [-1, 1] when the box is rendered at ``(h, w)``."""

    kind = "pixels"
    default_scale = 10000.0  # tools/sweep_inverse.py: best PSNR vs the photo for 4x super-resolution

    def __init__(self, name: str, box: FractionalWindow, target: torch.Tensor, weight: float = 1.0):
        if target.ndim != 3 or target.shape[0] != 3:
            raise ValueError(f"{name}: target must be (3, h, w), got {tuple(target.shape)}")
        super().__init__(name, box, tuple(target.shape[-2:]), weight)
        self.target = target

    def loss(self, rgb: torch.Tensor) -> torch.Tensor:
        return (rgb - self.target.to(rgb)).pow(2).mean(dim=(1, 2, 3))


class MaskedPixels(Pixels):
    """Squared error on the known pixels ``known (1, h, w)`` (1 = keep) only, averaged over them."""

    kind = "masked_pixels"
    default_scale = 3000.0  # tools/sweep_inverse.py: known pixels 18.4 dB (unguided 9.9), hole as good

    def __init__(self, name: str, box: FractionalWindow, target: torch.Tensor, known: torch.Tensor,
                 weight: float = 1.0):
        super().__init__(name, box, target, weight)
        if known.shape != (1, *target.shape[-2:]):
            raise ValueError(f"{name}: mask {tuple(known.shape)} does not match the image {tuple(target.shape)}")
        if not known.any():
            raise ValueError(f"{name}: the mask marks no known pixel")
        self.known = known.float()

    def loss(self, rgb: torch.Tensor) -> torch.Tensor:
        known = self.known.to(rgb)
        err = (rgb - self.target.to(rgb)).pow(2) * known  # (B, 3, h, w)
        return err.sum(dim=(1, 2, 3)) / (3 * known.sum())


class ConditionTerms:
    """The terms of a layout, the weighted loss the solvers minimise (not the backbone's conditioning,
    ``infd.models.conditioning``): ``losses(renderer, phi)`` -> ``{name: (B,)}``, ``total`` -> ``(B,)``."""

    def __init__(self, terms: list[Term]):
        if not terms:
            raise ValueError("conditions need at least one term")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"term names must be unique, got {names}")
        self.terms = list(terms)

    def __iter__(self):
        return iter(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def pixel_density(self) -> tuple[float, float]:
        """``(rows, cols)`` of the densest term's pixel grid, in pixels per whole output height / width."""
        return (max(t.resolution[0] / (t.box.y1 - t.box.y0) for t in self.terms),
                max(t.resolution[1] / (t.box.x1 - t.box.x0) for t in self.terms))

    def losses(self, renderer: nn.Module, phi: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's loss ``(B,)`` for the field ``phi (B, C, h, w)``."""
        return {t.name: t.loss(t.render(renderer, phi)) for t in self.terms}

    def total(self, losses: dict[str, torch.Tensor], scaled: bool = False) -> torch.Tensor:
        """``sum_k w_k L_k``, shape ``(B,)``; ``scaled``: ``sum_k s_k w_k L_k`` with each term kind's
        ``default_scale`` (the guided solver without one condition scale for all)."""
        return sum((t.default_scale if scaled else 1.0) * t.weight * losses[t.name] for t in self.terms)


def load_image(path: Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An RGB image file as ``(3, h, w)`` in [-1, 1], resized to ``size`` (antialiased bicubic) if given.

    Decoded as the training data is (``infd.data.decode``: decompression bombs refused from the header,
    EXIF orientation, alpha on white); without ``size`` its sides may be at most ``MAX_TERM_SIDE``."""
    from infd.data.decode import DecodeConfig, DecodeError, decode_image

    config = DecodeConfig()
    try:
        if path.stat().st_size > config.max_file_bytes:
            raise DecodeError(f"file is larger than {config.max_file_mb:g} MB")
        image = decode_image(path.read_bytes(), config)
    except (OSError, DecodeError) as err:
        raise LayoutError(f"cannot read image {path}: {str(err).splitlines()[0]}") from None
    if size is None and max(image.size) > MAX_TERM_SIDE:
        raise LayoutError(f"image {path} is {image.width}x{image.height}: give its term a resolution of at most "
                          f"{MAX_TERM_SIDE} a side")
    array = np.asarray(image, dtype=np.float32)
    img = torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1  # (3, h, w)
    if size is not None and tuple(img.shape[-2:]) != tuple(size):
        img = F.interpolate(img[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    return img.clamp(-1, 1)


def load_mask(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """A mask image as ``(1, h, w)`` in {0, 1} (1 where the mean grey level is >= 0.5), resized to ``size``."""
    grey = load_image(path).mean(dim=0, keepdim=True)  # (1, h, w) in [-1, 1]
    if tuple(grey.shape[-2:]) != tuple(size):
        grey = F.interpolate(grey[None], size=size, mode="area")[0]
    return (grey >= 0).float()


def build_term(spec: TermSpec, clip: ClipAdapter | None = None, seed: int = 0) -> Term:
    """Load a layout term's files (or embed its prompt) into a ``Term``."""
    if spec.kind == "clip_text":
        if clip is None:
            raise LayoutError(f"term '{spec.name}' is a clip_text condition: it needs CLIP weights (--clip DIR)")
        resolution = spec.resolution or (clip.image_size, clip.image_size)
        return ClipText(spec.name, spec.box, resolution, clip, spec.prompt, spec.weight, spec.cutouts, seed)
    target = load_image(spec.image, spec.resolution)
    if spec.kind == "pixels":
        return Pixels(spec.name, spec.box, target, spec.weight)
    known = load_mask(spec.known_mask, tuple(target.shape[-2:]))
    try:
        return MaskedPixels(spec.name, spec.box, target, known, spec.weight)
    except ValueError as err:
        raise LayoutError(str(err)) from None


def build_condition_terms(layout: Layout, clip: ClipAdapter | None = None, seed: int = 0) -> ConditionTerms:
    """The ``ConditionTerms`` of a checked layout; image files are read here (``LayoutError`` if unreadable)."""
    return ConditionTerms([build_term(spec, clip, seed + i) for i, spec in enumerate(layout.terms)])
