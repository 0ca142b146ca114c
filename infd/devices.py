"""The one device resolver: a ``--device`` value (``auto``, ``cpu``, ``cuda``, ``cuda:N``) -> ``torch.device``.

Every tool and job that takes a device name resolves it here, so ``auto`` means the same thing
everywhere and a GPU that is absent or out of range fails with one line before any work starts.
Imports nothing of infd.
"""
from __future__ import annotations

import re

import torch

CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(ValueError):
    """A device name that this machine cannot provide (one line, shown to the user as is)."""


def resolve_device(name: str | torch.device, default_index: int | None = None) -> torch.device:
    """The ``torch.device`` of ``name``.

    ``auto`` is CUDA when available, else the CPU. ``cuda`` (and ``auto`` on a GPU machine) is GPU
    ``default_index`` (e.g. a rank's local GPU), or the unindexed current CUDA device when ``None``.
    ``cuda:N`` is checked against the GPUs present. Raises ``DeviceError`` otherwise.
    """
    text = str(name)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise DeviceError(f"--device {name}: use {CHOICES}")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine")
    index = int(match[1]) if match[1] is not None else default_index
    if index is None:
        return torch.device("cuda")
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", index)


def device_type(name: str) -> str:
    """``"cuda"`` or ``"cpu"`` for a ``--device`` value (``auto`` picks CUDA when present), without checking
    an index: what a launcher needs before it knows its rank's GPU."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else "cpu"
