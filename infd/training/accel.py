"""Accelerate set-up shared by the training loops (CPU, one GPU, many GPUs/nodes)."""
from __future__ import annotations

import importlib.util
import logging
import os
import random

import torch

TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}  # name -> packages that serve it
log = logging.getLogger("infd.train")


def available_trackers(names) -> list[str]:
    """The ``trackers`` whose package is installed (none of them is a dependency of infd)."""
    return [n for n in names if any(importlib.util.find_spec(p) is not None for p in TRACKERS[n])]


def make_accelerator(mixed_precision: str, run_dir, cpu: bool | None = None, trackers=("tensorboard",)):
    """An ``Accelerator`` for this machine, logging to the installed ``trackers`` (TensorBoard under
    ``run_dir/tb``; wandb under ``run_dir``). Each missing one is named in a warning, so a run never
    drops its logs silently (``TrainingRun`` warns once its set-up checks have passed)."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration

    from ..devices import dist_timeout

    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    usable = available_trackers(trackers)
    project = ProjectConfiguration(project_dir=str(run_dir), logging_dir=os.path.join(str(run_dir), "tb"))
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision, log_with=usable or None, project_config=project,
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=dist_timeout())])


def seed_run(seed: int, deterministic: bool = False):
    """Seed torch's global RNG before a run builds its models; ``deterministic`` also seeds Python's and
    asks torch for deterministic kernels (needed for bit-exact resume tests)."""
    torch.manual_seed(seed)
    if deterministic:
        random.seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
