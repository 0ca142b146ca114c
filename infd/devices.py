"""The one device resolver: a ``--device`` value (``auto``, ``cpu``, ``cuda``, ``cuda:N``) -> ``torch.device``.

Every tool and job that takes a device name resolves it here, so ``auto`` means the same thing
everywhere and a GPU that is absent or out of range fails with one line before any work starts.
``dist_timeout`` is the one process-group timeout of training and rendering ranks. Imports nothing of infd.
"""
from __future__ import annotations

import datetime
import os
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


DIST_TIMEOUT_ENV = "INFD_DIST_TIMEOUT_S"


def dist_timeout() -> datetime.timedelta:
    """How long a rank waits in a collective for the others before failing (torch's default: 30 minutes);
    ``INFD_DIST_TIMEOUT_S`` shortens it, so a dead rank ends a test or a job in seconds, not half an hour."""
    text = os.environ.get(DIST_TIMEOUT_ENV, "1800")
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e7:
        raise DeviceError(f"{DIST_TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return datetime.timedelta(seconds=seconds)
