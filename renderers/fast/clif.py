"""FastCLIF: CLIF's inference path on a regular grid, the same function as ``CLIF.forward`` with less work.

- First conv at field resolution (``field_conv.first_conv_regular``): no ``C + 4`` channel buffer on
  the query grid and about 11% fewer multiply-adds for the paper's CLIF at 4x upsampling. A bilinear
  lookup has no repeated patterns to share, so there the first conv runs on the query features.
- Hidden 3x3 convs on CPU by Winograd F(4x4, 3x3) (``winograd``), SiLU applied while copying each
  band's input patch, bias and residual added in the output step. Elsewhere (GPU, half precision,
  narrow CLIFs) the library's conv runs, in place where no autograd graph needs the inputs.
- Everything stays in ``(B, H, W, D)`` (channels-last) memory; the two full-size activations and the
  band buffers are allocated once per render and reused by every layer.

Outputs equal the plain path up to float rounding (tested to ~1e-5 relative in fp32). It computes no
gradients: training, and anything else that differentiates, calls the ``CLIF`` module itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..clif import CLIF
from ..coords import QueryGrid, as_grid
from .field_conv import first_conv_regular
from .winograd import conv3x3_winograd, winograd_weight

WINOGRAD_MIN_CHANNELS = 32  # below this the transforms cost more than the multiplies they save


def uses_winograd(clif: CLIF) -> bool:
    """Whether ``FastCLIF(clif)`` runs the hidden convs by Winograd: on CPU, in fp32/fp64 (its transforms
    amplify half-precision rounding), for ``hidden >= WINOGRAD_MIN_CHANNELS``."""
    weight = clif.conv_in.weight
    return (weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)
            and clif.config.hidden >= WINOGRAD_MIN_CHANNELS)


class FastCLIF:
    """``clif`` for inference on regular grids: ``FastCLIF(clif)(phi, coord, cell)`` equals ``clif(phi, coord, cell)``.

    Args:
        clif: the renderer whose weights it uses, on its final device and dtype. The Winograd weights
            are computed here, once: prepare a new ``FastCLIF`` after changing the module's weights.
        workers: Python threads for the banded stages on CPU (default: torch's thread count now). The
            ops on them run at torch's intra-op thread count, which is the caller's to set (once).
    """

    def __init__(self, clif: CLIF, workers: int | None = None):
        self.clif = clif
        self.radius = clif.radius
        self.max_magnification = getattr(clif, "max_magnification", None)  # read by the engine
        on_cpu = clif.conv_in.weight.device.type == "cpu"
        self.workers = (workers or torch.get_num_threads()) if on_cpu else 1
        # (conv1, conv2) of each block as Winograd's (36, C, D) kernels, or None for the library conv.
        self.winograd = ([(winograd_weight(b.conv1.weight), winograd_weight(b.conv2.weight)) for b in clif.blocks]
                         if uses_winograd(clif) else None)

    @torch.no_grad()
    def __call__(self, phi: torch.Tensor, coord: QueryGrid | torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """``rgb (B, 3, H, W)`` of a ``QueryGrid`` (or a dense regular ``(B, H, W, 2)``, split once) with
        one ``cell (B, 2)`` per image."""
        grid = as_grid(coord)
        if not isinstance(grid, QueryGrid):
            raise ValueError("FastCLIF renders regular query grids; render scattered queries with the CLIF module")
        if cell.dim() != 2:
            raise ValueError(f"FastCLIF takes one cell per image (B, 2), got {tuple(cell.shape)}; "
                             "render per-pixel cells with the CLIF module")
        return self.render_axes(phi, grid.ys, grid.xs, cell)

    def render_axes(self, phi: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """CLIF on the grid ``ys (B, H) x xs (B, W)`` with ``cell (B, 2)``: ``(B, 3, H, W)``, channels-last memory."""
        clif = self.clif
        workspaces = [] if self.winograd else None  # Winograd's band buffers, shared by all its convs
        if clif.config.lookup == "nearest":
            x = first_conv_regular(clif.conv_in, phi, ys, xs, cell, self.workers)  # (B, H, W, D)
        else:
            x = clif.conv_in(clif.query_features(phi, QueryGrid(ys, xs), cell)).permute(0, 2, 3, 1)
        h = torch.empty_like(x) if self.winograd else None  # every block's inner activation
        for k, block in enumerate(clif.blocks):  # x + conv2(silu(norm2(conv1(silu(norm1(x)))))), summed in place
            w1, w2 = self.winograd[k] if self.winograd else (None, None)
            h = self._conv3x3(block.conv1, w1, x, block.norm1, workspaces, out=h)
            x = self._conv3x3(block.conv2, w2, h, block.norm2, workspaces, accumulate=x, overwrite=True)
        del h
        a = F.silu(_normed(clif.norm_out, x), inplace=True)  # x is not needed any more
        return clif.conv_out(a.permute(0, 3, 1, 2))

    def _conv3x3(self, conv: nn.Conv2d, weight_t: torch.Tensor | None, x: torch.Tensor, norm: nn.Module,
                 workspaces: list | None, accumulate: torch.Tensor | None = None, out: torch.Tensor | None = None,
                 overwrite: bool = False) -> torch.Tensor:
        """``conv(silu(norm(x)))`` on ``(B, H, W, C)``, added into ``accumulate`` or written to ``out``.

        ``weight_t``: the conv's Winograd kernel, or ``None`` for the library conv; ``overwrite``: ``x``
        is not needed afterwards and may be used as scratch.
        """
        a = _normed(norm, x)
        if weight_t is not None:
            return conv3x3_winograd(a, weight_t, conv.bias, pre_silu=True, accumulate=accumulate, out=out,
                                    workspaces=workspaces, workers=self.workers)
        a = F.silu(a, inplace=overwrite or a is not x)
        y = conv(a.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return y if accumulate is None else accumulate.add_(y)


def _normed(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` for ``x (B, H, W, D)``: identity, or PixelNorm's LayerNorm over the last dim."""
    return x if isinstance(norm, nn.Identity) else norm.norm(x)
