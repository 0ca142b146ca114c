"""Joint denoising of a latent canvas larger than the backbone's trained size (MultiDiffusion).

At every sampler step the backbone runs on windows of the trained latent size that cover the canvas,
and the prediction at each position is the average of the predictions of the windows that hold it
(Bar-Tal et al. 2023, Eq. 5: the least-squares reconciliation of the windows). Every sampler in
``infd.diffusion.samplers`` reads the network only through ``x0`` and ``eps``, which are affine in the
network output at a fixed ``x_t`` (for eps- and v-prediction alike), so averaging outputs is averaging
the windows' x0 estimates and their steps: one wrapper, ``JointDenoiser``, serves every sampler, with
classifier-free guidance applied per window inside it (also affine) and with guidance gradients (the
average is differentiable).

Two window plans (``WindowSpec.mode``):

- ``overlap``: fixed windows every ``stride`` positions (the last one flush with the canvas edge). With
  ``stride < window`` neighbours share positions; the cost per position grows to about
  ``(window / stride)^2``. ``blend``: ``uniform`` is MultiDiffusion's plain average; ``tent`` (default)
  weights each window's prediction by a tent, ``min(i + 1, size - i)`` along each axis (flat on a side
  where the window meets the canvas edge, which no other window covers), so a window's contribution fades in
  instead of starting with a step where its edge lies: a backbone's predictions are worst at its edges.
- ``shifted``: a grid of non-overlapping windows whose origin moves at every timestep (the offset
  is a fixed function of ``t``), so no window border stays in one place and no position is computed
  twice; the windows cut by the canvas edge are smaller than the trained size, which a convolutional
  backbone (the UNet) takes and a fixed-grid one (the U-ViT) does not. Cost about 1x per position.

Per-region labels (``LabelBox``): each box of the canvas is denoised with its own class label and the
rest with the base condition; at every position the windows' predictions under the labels of the
boxes that hold it (or the base condition outside every box) are averaged.

A canvas of the trained size with no boxes is the plain backbone call, bit for bit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .guidance import Cond, concat_cond
from .sampling import WINDOW_MODES

WindowMode = Literal["overlap", "shifted"]
SHIFT_PRIME = 7919  # shifted mode: the grid origin at timestep t is (t * SHIFT_PRIME) mod window, quantised


@dataclass(frozen=True)
class WindowSpec:
    """How a canvas is covered: ``stride`` (overlap mode; ``None``: three quarters of the window), ``batch`` windows per
    backbone call (results do not depend on it), ``mode`` and ``multiple`` (shifted mode: window sides
    and offsets are multiples of it, the backbone's downsampling factor)."""

    stride: int | None = None
    batch: int = 8
    mode: WindowMode = "overlap"
    multiple: int = 1
    blend: Literal["uniform", "tent"] = "tent"  # overlap mode: how overlapping predictions are weighted

    def __post_init__(self):
        if self.mode not in WINDOW_MODES:
            raise ValueError(f"window mode must be one of {', '.join(WINDOW_MODES)}, got {self.mode!r}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"window stride must be at least 1 latent position, got {self.stride}")
        if self.batch < 1:
            raise ValueError(f"window batch must be at least 1, got {self.batch}")
        if self.multiple < 1:
            raise ValueError(f"window multiple must be at least 1, got {self.multiple}")
        if self.blend not in ("uniform", "tent"):
            raise ValueError(f"window blend must be uniform or tent, got {self.blend!r}")


@dataclass(frozen=True)
class LabelBox:
    """A box of the latent canvas, rows ``top:bottom`` and columns ``left:right``, denoised with ``label``
    (``None``: the null label, i.e. unconditional there)."""

    top: int
    left: int
    bottom: int
    right: int
    label: int | None

    def __post_init__(self):
        if not (0 <= self.top < self.bottom and 0 <= self.left < self.right):
            raise ValueError(f"empty or negative label box {self}")


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of windows of ``window`` positions every ``stride``, the last one ending at ``length``."""
    if length < window:
        raise ValueError(f"canvas side {length} is smaller than the window {window}")
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def shifted_spans(length: int, window: int, offset: int) -> list[tuple[int, int]]:
    """``(start, size)`` of non-overlapping windows of ``window`` positions whose grid starts at
    ``offset - window`` (clipped to ``[0, length)``): the tiling of ``length`` shifted by ``offset``; one
    window when ``length <= window``."""
    if length <= window:
        return [(0, length)]  # one window holds the side: nothing to shift
    spans, start = [], offset - window if offset > 0 else 0
    while start < length:
        lo, hi = max(start, 0), min(start + window, length)
        spans.append((lo, hi - lo))
        start += window
    return spans


def tent_weights(start: int, size: int, length: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Weights ``(size,)`` of a window ``[start, start + size)`` of an axis of ``length``: ``min(i + 1,
    size - i)`` (a tent, positive everywhere), held at its peak ``ceil(size / 2)`` on a side that touches
    the axis end (no other window covers the positions there)."""
    i = torch.arange(size, device=device, dtype=dtype)
    peak = torch.full_like(i, float((size + 1) // 2))
    rise = i + 1 if start > 0 else peak
    fall = size - i if start + size < length else peak
    return torch.minimum(torch.minimum(rise, fall), peak)


def plan_windows(size: tuple[int, int], window: tuple[int, int], spec: WindowSpec,
                 t: int | None = None) -> list[tuple[int, int, int, int]]:
    """Windows ``(top, left, height, width)`` covering a canvas of ``size``, row by row (the order in which
    predictions are summed; fixed, so the result does not depend on how windows are batched)."""
    (H, W), (h, w) = size, window
    if spec.mode == "overlap":
        rows = [(s, h) for s in window_starts(H, h, spec.stride or max(3 * h // 4, 1))]
        cols = [(s, w) for s in window_starts(W, w, spec.stride or max(3 * w // 4, 1))]
    else:
        if t is None:
            raise ValueError("shifted windows need the timestep")
        m = spec.multiple
        if H % m or W % m:
            raise ValueError(f"shifted windows need canvas sides that are multiples of {m}, got {H}x{W}")
        rows = shifted_spans(H, h, (t * SHIFT_PRIME) % h // m * m)
        cols = shifted_spans(W, w, (t * SHIFT_PRIME // 3) % w // m * m)
    return [(top, left, hh, ww) for top, hh in rows for left, ww in cols]


class JointDenoiser(nn.Module):
    """``model(x, t, cond)`` on a canvas ``x (B, C, H, W)`` larger than the backbone's ``window``.

    ``model`` is the backbone (wrapped in ``ClassifierFreeGuidance`` for guidance). ``boxes`` give
    per-region labels; ``null_cond`` (``labels -> null labels``) fills the unlabelled layers when boxes
    and the base condition are batched together. ``on_windows(n)`` is called after each backbone call
    with the number of windows it ran (for a progress bar).
    """

    def __init__(self, model: nn.Module, window: tuple[int, int], spec: WindowSpec = WindowSpec(),
                 boxes: tuple[LabelBox, ...] = (), null_cond: Callable | None = None,
                 on_windows: Callable[[int], None] | None = None):
        super().__init__()
        self.model, self.window, self.spec = model, tuple(window), spec
        self.boxes, self.null_cond, self.on_windows = tuple(boxes), null_cond, on_windows

    def windows_per_step(self, size: tuple[int, int], t: int = 0) -> int:
        """Window evaluations of one call on a canvas of ``size`` (boxes add one per box a window meets)."""
        masks = self._masks(size, torch.device("cpu"))
        return sum(len(self._layers_in(win, masks)) for win in plan_windows(size, self.window, self.spec, t))

    def _layers_in(self, win, masks: list[torch.Tensor]) -> list[int]:
        """Layers a window meets (``masks`` from ``_masks``): 0 is the base condition (outside every box),
        ``i + 1`` box ``i``."""
        if not self.boxes:
            return [0]
        top, left, h, w = win
        return [i for i, m in enumerate(masks) if bool(m[top:top + h, left:left + w].any())]

    def _masks(self, size, device) -> list[torch.Tensor]:
        """Layer weights ``(H, W)``: the boxes (1 inside), and the base layer where no box is."""
        H, W = size
        boxes = []
        for b in self.boxes:
            if b.bottom > H or b.right > W:
                raise ValueError(f"label box {b} does not fit the {H}x{W} canvas")
            m = torch.zeros(H, W, device=device)
            m[b.top:b.bottom, b.left:b.right] = 1
            boxes.append(m)
        base = (1 - torch.stack(boxes).amax(0)) if boxes else torch.ones(H, W, device=device)
        return [base] + boxes

    def _layer_cond(self, layer: int, cond: Cond, batch: int, device) -> Cond:
        if layer == 0:
            return cond
        label = self.boxes[layer - 1].label
        if label is None:
            return None
        return torch.full((batch,), label, dtype=torch.long, device=device)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        B, _, H, W = x.shape
        step = int(t.reshape(-1)[0])
        wins = plan_windows((H, W), self.window, self.spec, step)
        if len(wins) == 1 and not self.boxes:
            if self.on_windows is not None:
                self.on_windows(1)
            return self.model(x, t, cond)
        masks = self._masks((H, W), x.device)
        items = [(win, layer) for win in wins for layer in self._layers_in(win, masks)]
        conds = {layer: self._layer_cond(layer, cond, B, x.device) for _, layer in items}
        if self.boxes and any(c is not None for c in conds.values()):
            conds = {layer: self._filled(c, conds) for layer, c in conds.items()}
        total = x.new_zeros(x.shape)
        weight = x.new_zeros(1, 1, H, W)
        groups: dict[tuple[int, int], list[int]] = {}  # one backbone call holds windows of one shape
        for i, ((_, _, h, w), _) in enumerate(items):
            groups.setdefault((h, w), []).append(i)
        outputs: list[torch.Tensor | None] = [None] * len(items)
        for indices in groups.values():
            for k in range(0, len(indices), self.spec.batch):
                chunk = indices[k:k + self.spec.batch]
                xs = torch.cat([_crop(x, items[i][0]) for i in chunk])
                out = self.model(xs, t.repeat(len(chunk)), _batched([conds[items[i][1]] for i in chunk]))
                for i, part in zip(chunk, out.split(B)):
                    outputs[i] = part
                if self.on_windows is not None:
                    self.on_windows(len(chunk))
        tent = self.spec.mode == "overlap" and self.spec.blend == "tent"
        for (win, layer), out in zip(items, outputs):  # summed in plan order, whatever the batching
            top, left, h, w = win
            m = masks[layer][top:top + h, left:left + w].to(x.dtype)
            if tent:
                m = m * (tent_weights(top, h, H, x.device, x.dtype)[:, None] * tent_weights(left, w, W, x.device, x.dtype))
            total[..., top:top + h, left:left + w] += out * m
            weight[..., top:top + h, left:left + w] += m
        return total / weight

    def _filled(self, c: Cond, conds: dict) -> Cond:
        """A layer's condition as a tensor when other layers have labels (they are batched together)."""
        if c is not None:
            return c
        like = next(v for v in conds.values() if v is not None)
        if self.null_cond is None:
            raise ValueError("label boxes on a canvas need null_cond to batch unlabelled windows")
        return self.null_cond(like)


def _batched(conds: list[Cond]) -> Cond:
    """The conditions of the windows of one backbone call, concatenated (``None`` if they are all ``None``)."""
    out = conds[0]
    for c in conds[1:]:
        out = concat_cond(out, c)
    return out


def _crop(x: torch.Tensor, win) -> torch.Tensor:
    top, left, h, w = win
    return x[..., top:top + h, left:left + w]
