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

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from infd.data.latents import LatentCacheError, LatentDataConfig, LatentStats, check_local_shards, load_stats, \
    make_latent_loader

from ..checkpoint import file_sha256, save_model
from ..config import ConfigError
from ..diffusion.bundle import LatentDiffusion, LatentDiffusionConfig
from ..diffusion.config import DiffusionConfig, build_backbone, build_schedule
from ..diffusion.guidance import drop_labels
from ..diffusion.objective import diffusion_loss
from ..models.autoencoder import NeuralFieldAutoencoder, load_autoencoder
from .accel import make_accelerator, set_deterministic
from .dm_samples import sample_grid
from .ema import EMA
from .guard import NanGuard, StopFlag, ignore_stop_signals
from .optim import OptimizerConfig, make_optimizer
from .run_dir import JsonlLog, write_resolved_config
from .state import TrainResult, latest_state, load_state, rng_state, save_state, set_rng_state

log = logging.getLogger("infd.train")
BUNDLE_NAME = "bundle.safetensors"


def _paper_optimizer() -> OptimizerConfig:
    return OptimizerConfig(name="adamw", lr=9.6e-5, betas=(0.9, 0.999), weight_decay=0.01)


@dataclass
class DMTrainConfig:
    run_dir: str = "runs/dm"
    autoencoder: str = ""  # the stage-1 checkpoint the latent cache was made with
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # as in configs/dm/*.yaml
    latents: LatentDataConfig = field(default_factory=LatentDataConfig)  # latents.batch_size is per process
    latent_norm: Literal["per_channel", "global"] = "per_channel"
    cond_drop_prob: float = 0.1  # class-conditional backbones only
    optimizer: OptimizerConfig = field(default_factory=_paper_optimizer)
    grad_clip: float = 1.0  # max grad norm; 0 disables
    ema_decay: float = 0.9999  # 0 disables the EMA copy (the bundle then holds the raw weights)
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step))
    max_steps: int = 100000
    max_minutes: float | None = None  # stop (with a checkpoint) after this long; a rerun continues
    log_every: int = 50
    sample_every: int = 5000  # 0 disables the sample grids
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2
    sample_sizes: tuple[int, ...] = (256, 1024)
    num_sample_images: int = 8
    sample_steps: int = 25
    sample_sampler: Literal["ddpm", "ddim", "dpmpp_2m"] = "ddim"
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    max_nonfinite_steps: int = 10
    seed: int = 0
    deterministic: bool = False
    exact_resume: bool = False  # on resume, replay the latent stream up to the saved position

    def __post_init__(self):
        if not 0.0 <= self.cond_drop_prob <= 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1], got {self.cond_drop_prob}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("max_steps", "log_every", "checkpoint_every", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive or null, got {self.max_minutes}")
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


def _any_rank(acc, flag: bool) -> bool:
    """Whether ``flag`` holds on any process (so all ranks stop at the same step)."""
    if acc.num_processes == 1:
        return flag
    return bool(acc.gather(torch.tensor([flag], device=acc.device)).any())


def train_diffusion(config: DMTrainConfig, resume: bool = True, progress: bool = True) -> TrainResult:
    """Run (or continue) stage-2 training up to ``config.max_steps`` (or a stop signal)."""
    run_dir = Path(config.run_dir)
    if not config.autoencoder:
        raise ConfigError("config key 'autoencoder' must name the stage-1 checkpoint the latent cache was made with")
    stats = load_stats(config.latents.stats_path())
    check_local_shards(config.latents.urls)
    if config.deterministic:
        set_deterministic(config.seed)
    else:
        torch.manual_seed(config.seed)
    acc = make_accelerator(config.mixed_precision, run_dir)
    autoencoder = load_autoencoder(config.autoencoder, acc.device)
    check_cache(config, stats, autoencoder)
    shift, scale = stats.shift_scale(config.latent_norm)

    model = build_backbone(config.diffusion)
    schedule = build_schedule(config.diffusion)
    optimizer = make_optimizer(model.parameters(), config.optimizer)
    ema = EMA(model, config.ema_decay, warmup=config.ema_warmup).to(acc.device) if config.ema_decay > 0 else None
    model, optimizer = acc.prepare(model, optimizer)
    unwrapped = acc.unwrap_model(model)

    step, samples_seen = 0, 0
    state_path = latest_state(run_dir) if resume else None
    if state_path is not None:
        state = load_state(state_path)
        unwrapped.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.model.load_state_dict(state["ema"])
        step, samples_seen = state["step"], state["samples_seen"]
        set_rng_state(state["rng"])
        if acc.is_main_process:
            log.info("resumed from %s (step %d)", state_path, step)
    if acc.is_main_process:
        write_resolved_config(run_dir, config)
        acc.init_trackers("dm")
    jsonl = JsonlLog(run_dir, enabled=acc.is_main_process)

    # The exported model: the frozen autoencoder and the EMA backbone, shared (not copied).
    bundle_config = LatentDiffusionConfig(autoencoder.config, config.diffusion, shift, scale)
    bundle = LatentDiffusion(bundle_config, autoencoder=autoencoder, backbone=ema.model if ema is not None else unwrapped)

    data_seed = config.seed if config.exact_resume or step == 0 else config.seed + step
    # its own generator: making the loader's iterator must not draw from the global RNG (exact resume)
    loader = make_latent_loader(dataclasses.replace(config.latents, seed=data_seed), rank=acc.process_index,
                                world_size=acc.num_processes, generator=torch.Generator().manual_seed(data_seed),
                                worker_init_fn=ignore_stop_signals)
    batches = iter(loader)
    if config.exact_resume and samples_seen:
        for _ in range(samples_seen // (config.latents.batch_size * acc.num_processes)):
            next(batches)  # replay, so the stream continues exactly where the saved run was

    num_classes = getattr(config.diffusion.model, "num_classes", None)
    objective = config.diffusion.objective
    guard = NanGuard(config.max_nonfinite_steps)
    bar = tqdm(total=config.max_steps, initial=step, disable=not (progress and acc.is_main_process),
               desc="stage 2", dynamic_ncols=True)
    t_last, n_last, loss_sum, loss_count = time.perf_counter(), step, 0.0, 0
    seeds = list(range(config.num_sample_images))

    def checkpoint():
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_state(run_dir, step, {
                "model": unwrapped.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.model.state_dict() if ema is not None else {},
                "step": step, "samples_seen": samples_seen, "rng": rng_state(),
            }, keep=config.keep_checkpoints)
            save_model(bundle, run_dir / BUNDLE_NAME, extra={"step": str(step)})
        acc.wait_for_everyone()

    def samples():
        if seeds and acc.is_main_process:
            sample_grid(bundle, seeds, config.sample_sizes, run_dir / "images" / f"samples-{step:08d}.png",
                        steps=config.sample_steps, sampler=config.sample_sampler,
                        guidance=config.diffusion.sampler.guidance_scale)
            unwrapped.train()  # sampling switched the backbone to eval mode (without an EMA copy)

    deadline = None if config.max_minutes is None else time.monotonic() + 60 * config.max_minutes
    out_of_time = False
    with StopFlag() as stop:
        while step < config.max_steps and not stop.requested:
            if deadline is not None and _any_rank(acc, time.monotonic() > deadline):
                log.info("max_minutes=%s reached at step %d: saving a checkpoint and stopping", config.max_minutes, step)
                out_of_time = True
                break
            batch = next(batches)
            x0 = bundle.to_model_space(batch["z"].to(acc.device))  # (B, C, h, w), about unit variance
            cond = _labels(batch, num_classes, config.cond_drop_prob, acc.device)
            samples_seen += x0.shape[0] * acc.num_processes
            with acc.autocast():
                loss = diffusion_loss(model, x0, schedule, cond=cond, prediction=objective.prediction,
                                      min_snr_gamma=objective.min_snr_gamma).mean()
            ok = guard.check(acc.gather(loss.detach()).mean().item(), step)
            optimizer.zero_grad(set_to_none=True)
            grad_norm = None
            if ok:
                acc.backward(loss)
                if config.grad_clip > 0:
                    grad_norm = acc.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update(unwrapped, num_updates=step)
                loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
            step += 1

            if step % config.log_every == 0 or step == config.max_steps:
                now = time.perf_counter()
                rate = (step - n_last) / max(now - t_last, 1e-9)
                mean_loss = loss_sum / loss_count if loss_count else float("nan")  # nan: every step was skipped
                values = {"loss": mean_loss, "steps_per_s": rate, "lr": optimizer.param_groups[0]["lr"]}
                if grad_norm is not None:
                    values["grad_norm"] = float(grad_norm)
                t_last, n_last, loss_sum, loss_count = now, step, 0.0, 0
                jsonl.write(step, **values)
                acc.log(values, step=step)
                bar.set_postfix(loss=f"{values['loss']:.4f}", it_s=f"{rate:.2f}")
            bar.update(1)
            if config.sample_every and (step % config.sample_every == 0 or step == config.max_steps):
                samples()
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                checkpoint()
        if (stop.requested or out_of_time) and step % config.checkpoint_every:
            checkpoint()
        if out_of_time and config.sample_every and step % config.sample_every:
            samples()  # the last grid of a time-limited run (not after a signal: that exit should be quick)
    bar.close()
    acc.end_training()
    return TrainResult(run_dir, ema.model if ema is not None else unwrapped, step, acc.num_processes)
