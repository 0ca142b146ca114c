"""Accelerate set-up shared by the training loops (CPU, one GPU, many GPUs/nodes)."""
from __future__ import annotations

import os
import random

import torch


def make_accelerator(mixed_precision: str, run_dir, cpu: bool | None = None, log_with: str | None = "tensorboard"):
    """An ``Accelerator`` for this machine; TensorBoard logs under ``run_dir/tb`` when available."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration

    from ..devices import dist_timeout

    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    if log_with == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            try:
                import tensorboardX  # noqa: F401
            except ImportError:
                log_with = None
    project = ProjectConfiguration(project_dir=str(run_dir), logging_dir=os.path.join(str(run_dir), "tb"))
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision, log_with=log_with, project_config=project,
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=dist_timeout())])


def seed_run(seed: int, deterministic: bool = False):
    """Seed torch's global RNG before a run builds its models; ``deterministic`` also seeds Python's and
    asks torch for deterministic kernels (needed for bit-exact resume tests)."""
    torch.manual_seed(seed)
    if deterministic:
        random.seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
