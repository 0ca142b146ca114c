"""A measured sweep of the guided solver's condition scale on held-out photos (issue 17).

For each photo (its centred square at ``size``) and each condition scale ``s``:

- **inpainting**: a ``masked_pixels`` term keeps the photo outside a centred square hole (half the side);
  measured: PSNR on the known pixels (does guidance keep them?) and on the hole (vs the real photo);
- **super-resolution**: a ``pixels`` term matches the photo downsampled to ``size / factor``; measured:
  PSNR of the result rendered at that size vs the input (consistency) and at ``size`` vs the photo.

``s = 0`` is the unguided sample of the same seed, the baseline of every row. The solver is
``infd.inverse.guided.solve_guided``, as ``tools/inverse.py --solver guided`` runs it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import metrics
from ..diffusion.sampling import SamplingSpec
from ..inverse.conditions import ConditionTerms, MaskedPixels, Pixels
from ..inverse.guided import solve_guided
from ..renderers.windows import FractionalWindow
from ..rendering.engine import inference_renderer, render

TASKS = ("inpaint", "sr")


@dataclass(frozen=True)
class SweepRow:
    task: str
    scale: float
    condition_psnr: float  # known pixels (inpaint) / the low-resolution input (sr), mean over photos
    truth_psnr: float  # the hole vs the photo (inpaint) / the full-size result vs the photo (sr)
    seconds: float  # per photo


def hole_mask(size: int) -> torch.Tensor:
    """``(1, size, size)``: 1 = known, 0 in the centred square of half the side."""
    known = torch.ones(1, size, size)
    q = size // 4
    known[:, q:size - q, q:size - q] = 0
    return known


def _masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB) over the pixels where ``mask (1, h, w)`` is 1, images in [-1, 1]."""
    err = ((pred.clamp(-1, 1) - target) / 2).pow(2) * mask
    mse = err.sum() / (3 * mask.sum() * pred.shape[0])
    return float(-10 * torch.log10(mse))


def sweep(model, photos: list[torch.Tensor], scales, tasks=TASKS, spec: SamplingSpec = SamplingSpec(steps=25),
          size: int = 64, factor: int = 4, seed: int = 0) -> list[SweepRow]:
    """Rows for every task and scale; ``photos`` are ``(3, size, size)`` in [-1, 1]."""
    full = FractionalWindow.full()
    renderer = inference_renderer(model.renderer)
    rows = []
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")
        for scale in scales:
            cond, truth, seconds = [], [], 0.0
            for photo in photos:
                if task == "inpaint":
                    known = hole_mask(size)
                    terms = ConditionTerms([MaskedPixels("photo", full, photo, known)])
                else:
                    low = F.interpolate(photo[None], scale_factor=1 / factor, mode="area")[0]
                    terms = ConditionTerms([Pixels("photo", full, low)])
                start = time.perf_counter()
                result = solve_guided(model, terms, [seed], spec, scale)
                seconds += time.perf_counter() - start
                with torch.no_grad():
                    out = render(renderer, result.phi, (size, size))
                    if task == "inpaint":
                        cond.append(_masked_psnr(out, photo[None], known))
                        truth.append(_masked_psnr(out, photo[None], 1 - known))
                    else:
                        small = render(renderer, result.phi, tuple(low.shape[-2:]))
                        cond.append(float(metrics.psnr(small.clamp(-1, 1), low[None])))
                        truth.append(float(metrics.psnr(out.clamp(-1, 1), photo[None])))
            n = len(photos)
            rows.append(SweepRow(task, float(scale), sum(cond) / n, sum(truth) / n, seconds / n))
    return rows
