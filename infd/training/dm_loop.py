"""Stage 2: train the latent diffusion backbone on the latent cache (``data.latents``).

One step (LDM, Sec. 3.3; DDPM Algorithm 1): normalise cached latents ``x0 = (z - shift) / scale``
(shift and scale from the cache's ``stats.json``), draw ``t`` and ``eps``, and minimise the eps- or
v-prediction MSE (``infd.diffusion.objective.diffusion_loss``); class labels, when the backbone takes
them, are replaced by the null label with probability ``cond_drop_prob`` (classifier-free guidance).
The encoder never runs: the frozen autoencoder is loaded only to decode sample grids and to go into
the exported ``LatentDiffusion`` bundle (``run_dir/bundle.safetensors``, EMA weights), which
``tools/render.py --checkpoint`` renders at any resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from infd.data.latents import LatentCacheError, LatentDataConfig, LatentStats, check_local_shards, load_stats, \
    make_latent_loader

from ..checkpoint import file_sha256
from ..config import ConfigError
from ..diffusion.bundle import LatentDiffusion, LatentDiffusionConfig
from ..diffusion.config import DiffusionConfig, build_backbone, build_schedule
from ..diffusion.guidance import drop_labels
from ..diffusion.objective import diffusion_loss
from ..models.autoencoder import NeuralFieldAutoencoder, load_autoencoder
from .accel import make_accelerator, seed_run
from .dm_samples import sample_grid
from .ema import EMA
from .optim import OptimizerConfig, cooldown_factor, make_optimizer, set_lr
from .run import TrainingRun, check_loop_config
from .state import CheckpointIO, TrainResult

BUNDLE_NAME = "bundle.safetensors"


def _paper_optimizer() -> OptimizerConfig:
    return OptimizerConfig(name="adamw", lr=9.6e-5, betas=(0.9, 0.999), weight_decay=0.01)


@dataclass
class DMTrainConfig:
    """A stage-2 run (``configs/train/dm_*.yaml``); the loop keys are checked by ``check_loop_config``."""

    run_dir: str = "runs/dm"  # checkpoints, logs, sample grids and bundle.safetensors; a rerun resumes
    autoencoder: str = ""  # the stage-1 checkpoint the latent cache was made with
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # as in configs/dm/*.yaml
    latents: LatentDataConfig = field(default_factory=LatentDataConfig)  # latents.batch_size is per process
    latent_norm: Literal["per_channel", "global"] = "per_channel"
    cond_drop_prob: float = 0.1  # class-conditional backbones only
    optimizer: OptimizerConfig = field(default_factory=_paper_optimizer)
    grad_clip: float = 1.0  # max grad norm; 0 disables
    ema_decay: float = 0.9999  # 0 disables the EMA copy (the bundle then holds the raw weights)
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step))
    max_steps: int = 100000  # total steps of the run, across restarts
    lr_cooldown_steps: int = 0  # the last steps before max_steps take the lr down linearly to ~0 (0: constant lr)
    max_minutes: float | None = None  # stop (with a checkpoint) after this long; a rerun continues
    log_every: int = 50  # steps between log.jsonl / tracker / plain log lines
    trackers: tuple[str, ...] = ("tensorboard",)  # also "wandb"; each needs its package installed
    sample_every: int = 5000  # 0 disables the sample grids
    checkpoint_every: int = 5000  # steps between saved states (and the exported bundle)
    keep_checkpoints: int = 2  # newest states kept in checkpoints/
    sample_sizes: tuple[int, ...] = (256, 1024)  # render sizes of the sample grids
    num_sample_images: int = 8  # fixed seeds in each sample grid
    sample_steps: int = 25  # sampler steps of the grids' samples
    sample_sampler: Literal["ddpm", "ddim", "dpmpp_2m"] = "ddim"
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    max_nonfinite_steps: int = 10  # non-finite losses in a row (skipped steps) before the run stops
    seed: int = 0  # of the weights, the latent stream and the noise
    deterministic: bool = False  # deterministic kernels and seeded Python RNG (bit-exact resume tests)
    exact_resume: bool = False  # on resume, replay the latent stream up to the saved position

    def __post_init__(self):
        if not 0.0 <= self.cond_drop_prob <= 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1], got {self.cond_drop_prob}")
        check_loop_config(self)
        if self.lr_cooldown_steps < 0:  # longer than max_steps: the run starts below the base lr
            raise ValueError(f"lr_cooldown_steps must be >= 0, got {self.lr_cooldown_steps}")
        if self.sample_steps < 1:
            raise ValueError(f"sample_steps must be >= 1, got {self.sample_steps}")
        if self.sample_every < 0 or self.num_sample_images < 0 or not all(s > 0 for s in self.sample_sizes):
            raise ValueError("sample_every and num_sample_images must be >= 0 and sample_sizes positive")


def check_cache(config: DMTrainConfig, stats: LatentStats, autoencoder: NeuralFieldAutoencoder):
    """The cache, the autoencoder and the backbone must agree; one-line errors otherwise."""
    if stats.autoencoder_sha256 and stats.autoencoder_sha256 != file_sha256(config.autoencoder):
        raise LatentCacheError(f"the latent cache was made with another autoencoder ({stats.autoencoder}, sha256 "
                               f"{stats.autoencoder_sha256[:12]}) than {config.autoencoder}: re-run tools/cache_latents.py")
    ae = autoencoder.config
    expected = (ae.z_channels, ae.latent_size, ae.latent_size)
    if tuple(stats.latent_shape) != expected:
        raise LatentCacheError(f"cached latents are {list(stats.latent_shape)} but the autoencoder's are {list(expected)}")
    model = config.diffusion.model
    if (model.in_channels, model.out_channels) != (ae.z_channels, ae.z_channels):
        raise ConfigError(f"diffusion.model in_channels/out_channels must be the latent channels {ae.z_channels}, "
                          f"got {model.in_channels}/{model.out_channels}")
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and stats.num_labelled < stats.num_latents:
        raise LatentCacheError(f"the backbone is class-conditional (num_classes {num_classes}) but only "
                               f"{stats.num_labelled} of {stats.num_latents} cached latents have a label")


def _labels(batch: dict, num_classes: int | None, drop_prob: float, device) -> torch.Tensor | None:
    """Class labels ``(B,)`` with classifier-free dropout, or ``None`` for an unconditional backbone."""
    if num_classes is None:
        return None
    labels = batch["label"]
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        raise LatentCacheError(f"latent labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
    return drop_labels(labels, num_classes, drop_prob).to(device)  # label num_classes is the null label


class _MeanLoss:
    """The mean loss of the updates since the last log line (nan when every step was skipped)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, loss: float):
        self.total, self.count = self.total + loss, self.count + 1

    def pop(self) -> float:
        mean = self.total / self.count if self.count else float("nan")
        self.total, self.count = 0.0, 0
        return mean


def train_diffusion(config: DMTrainConfig, resume: bool = True, progress: bool = True,
                    init_from: str | None = None, allow_config_change: bool = False) -> TrainResult:
    """Run (or continue) stage-2 training up to ``config.max_steps`` (or a stop signal, or ``max_minutes``)."""
    if not config.autoencoder:
        raise ConfigError("config key 'autoencoder' must name the stage-1 checkpoint the latent cache was made with")
    stats = load_stats(config.latents.stats_path())
    check_local_shards(config.latents.urls)
    seed_run(config.seed, config.deterministic)
    acc = make_accelerator(config.mixed_precision, config.run_dir, trackers=config.trackers)
    autoencoder = load_autoencoder(config.autoencoder, acc.device)
    check_cache(config, stats, autoencoder)
    shift, scale = stats.shift_scale(config.latent_norm)

    model = build_backbone(config.diffusion)
    schedule = build_schedule(config.diffusion)
    optimizer = make_optimizer(model.parameters(), config.optimizer)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup).to(acc.device) if config.ema_decay > 0 else None
    model, optimizer = acc.prepare(model, optimizer)
    unwrapped = acc.unwrap_model(model)
    # The exported model: the frozen autoencoder and the EMA backbone, shared (not copied).
    bundle = LatentDiffusion(LatentDiffusionConfig(autoencoder.config, config.diffusion, shift, scale),
                             autoencoder=autoencoder, backbone=ema.model if ema is not None else unwrapped)
    io = CheckpointIO(config.run_dir, config.keep_checkpoints, model=unwrapped, optimizer=optimizer,
                      ema=ema.model if ema is not None else None)
    run = TrainingRun(config, acc, io, bundle, Path(config.run_dir) / BUNDLE_NAME, name="dm", desc="stage 2",
                      resume=resume, progress=progress, init_from=init_from, optimizers={"optimizer": config.optimizer},
                      allow_config_change=allow_config_change, batch_size=config.latents.batch_size)
    num_classes = getattr(config.diffusion.model, "num_classes", None)
    objective = config.diffusion.objective
    mean_loss = _MeanLoss()
    seeds = list(range(config.num_sample_images))

    def samples():
        if seeds and acc.is_main_process:
            path = run.run_dir / "images" / f"samples-{run.step:08d}.png"
            grid = sample_grid(bundle, seeds, config.sample_sizes, path, steps=config.sample_steps,
                               sampler=config.sample_sampler, guidance=config.diffusion.sampler.guidance_scale)
            run.log_image("samples", grid)
            unwrapped.train()  # sampling switched the backbone to eval mode (without an EMA copy)

    batches = run.batches(make_latent_loader, config.latents)
    with run:
        while run.running():
            batch = next(batches)
            x0 = bundle.to_model_space(batch["z"].to(acc.device))  # (B, C, h, w), about unit variance
            cond = _labels(batch, num_classes, config.cond_drop_prob, acc.device)
            run.samples_seen += x0.shape[0] * acc.num_processes
            cooldown = cooldown_factor(run.step, config.max_steps, config.lr_cooldown_steps)
            set_lr(optimizer, config.optimizer.lr * cooldown)
            with acc.autocast():
                loss = diffusion_loss(model, x0, schedule, cond=cond, prediction=objective.prediction,
                                      min_snr_gamma=objective.min_snr_gamma).mean()
            ok, grad_norm = run.update(loss, model, optimizer, ema)
            if ok:
                mean_loss.add(loss.item())
            run.step_done(lambda: {"loss": mean_loss.pop(), "lr": optimizer.param_groups[0]["lr"],
                                   **({} if grad_norm is None else {"grad_norm": float(grad_norm)})})

            if config.sample_every and (run.step % config.sample_every == 0 or run.step == config.max_steps):
                samples()
            run.checkpoint_if_due()
        run.save_if_stopped()
        if run.out_of_time and config.sample_every and run.step % config.sample_every:
            samples()  # the last grid of a time-limited run (not after a signal: that exit should be quick)
    del model  # the DDP wrapper: freed before the process group (TrainingRun.finish)
    return run.finish(bundle.backbone)
