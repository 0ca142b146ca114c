"""Where samples come from: the model to render with, and the latents ``z`` it decodes.

``load_render_model(path)`` loads an infd checkpoint; without one it takes the bundled model
(``infd/weights/default.safetensors``, part of the package).

``sample_latents`` is the one seam for the diffusion prior. A model without a prior (an autoencoder
alone) gets ``z ~ N(0, I)`` of its latent shape, one seeded generator per sample so a sample does not
depend on its batch; a diffusion bundle (``infd.diffusion.bundle.LatentDiffusion``) runs its sampler
(``infd.diffusion.sampling.SamplingSpec``, with the inverse solvers' hooks) on that noise instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from infd.checkpoint import CheckpointError, load_model
from infd.diffusion.noise import PerSampleRNG
from infd.diffusion.sampling import CLASS_PER_SEED, SamplingSpec
from infd.diffusion.windows import LabelBox, WindowSpec

from .request import RequestError

BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "default.safetensors"


def load_render_model(path: str | Path | None = None) -> nn.Module:
    """The model in the checkpoint at ``path`` (default: the bundled model), checked to decode and render."""
    if path is None and not BUNDLED_CHECKPOINT.is_file():
        raise CheckpointError(f"the bundled model {BUNDLED_CHECKPOINT} is missing: reinstall infd or pass "
                              "--checkpoint FILE")
    path = BUNDLED_CHECKPOINT if path is None else path
    model = load_model(path)
    if not (callable(getattr(model, "decode", None)) and hasattr(model, "renderer")):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, which does not decode latents to a "
                              "field and render it (give an autoencoder or a diffusion bundle)")
    latent_shape(model)
    return model


def has_prior(model: nn.Module) -> bool:
    """Whether ``model`` carries a diffusion prior over its latents (a diffusion bundle)."""
    return callable(getattr(model, "sample_latents", None))


def latent_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(z_channels, h, w)`` of the latents ``model.decode`` takes."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "z_channels") or not hasattr(config, "latent_size"):
        raise CheckpointError(f"{type(model).__name__} is not a model that decodes latents to a field")
    return config.z_channels, config.latent_size, config.latent_size


def sample_latents(model: nn.Module, seeds: list[int], spec: SamplingSpec, *, cond_fn: Callable | None = None,
                   callback: Callable | None = None, canvas: tuple[int, int] | None = None,
                   windows: WindowSpec | None = None, boxes: tuple[LabelBox, ...] = (),
                   on_windows: Callable[[int], None] | None = None,
                   labels: list[int] | None = None) -> torch.Tensor:
    """Latents ``z (len(seeds), z_channels, h, w)``, one per seed, on the model's device.

    Without a diffusion prior: ``z ~ N(0, I)``, drawn per seed (``torch.Generator().manual_seed``), so
    a seed gives the same sample in any batch and on any rank. With a prior the model's own
    ``sample_latents(noise, spec, rng=rng, cond_fn=cond_fn, callback=callback)`` turns that noise into
    samples, drawing the noise of stochastic steps from the same per-seed generators, and the class of
    each seed from ``spec.labels`` (``--class seed``: seed s takes class s mod K), or from ``labels`` (one
    class per seed, e.g. the training photos' labels of ``tools/eval.py --sample-labels train``).

    ``canvas = (h, w)`` asks for latents larger than the trained size (``--canvas grow``), denoised jointly
    in windows (``windows``, label ``boxes``: ``infd.diffusion.windows``).
    """
    c, h, w = latent_shape(model)
    shape = (c, *canvas) if canvas is not None else (c, h, w)
    rng = PerSampleRNG(seeds)  # x_T first, then (for a prior) the noise of stochastic sampler steps
    noise = rng.randn(shape)
    if not has_prior(model):
        if cond_fn is not None or callback is not None or boxes:
            raise ValueError(f"{type(model).__name__} has no diffusion prior: cond_fn, callback and label boxes "
                             "need a sampler")
        return noise.to(next(model.parameters()).device)
    check_sampling(model, spec)
    if labels is None:  # explicit labels are checked by the bundle (count and range, label_cond)
        labels = spec.labels(seeds, getattr(model, "num_classes", None))
    joint = {} if canvas is None and windows is None and not boxes else dict(
        windows=windows, boxes=tuple(boxes), on_windows=on_windows)
    return model.sample_latents(noise, spec, rng=rng, cond_fn=cond_fn, callback=callback, labels=labels, **joint)


def check_sampling(model: nn.Module, spec: SamplingSpec) -> None:
    """``RequestError`` (one line) when ``spec`` does not fit ``model``'s prior: more steps than its schedule
    has, or a class label it does not know (an unconditional model takes none). No-op without a prior."""
    if not has_prior(model):
        return
    T = model.schedule.num_steps
    if spec.steps > T:
        raise RequestError(f"--steps {spec.steps} is more than this model's {T} diffusion steps")
    classes = getattr(model, "num_classes", None)
    if spec.class_label == CLASS_PER_SEED:  # a class per seed, or none for an unconditional prior
        return
    if spec.class_label is not None and classes is None:
        raise RequestError(f"--class {spec.class_label}: this model is unconditional and takes no class label")
    if spec.class_label is not None and spec.class_label >= classes:
        raise RequestError(f"--class {spec.class_label} is not a label of this model (0..{classes - 1})")
