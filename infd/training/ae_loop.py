"""Stage 1: train the neural-field autoencoder on multiscale random patches.

One step (INFD, Sec. 3.2): ``rgb = R(D(Q(E(inp))), coord, cell)`` for a batch of patches; the
generator loss is L1 + LPIPS + adaptive-weight GAN + the VQ/KL term; the discriminator step reuses
the same ``rgb`` (detached), so each step encodes, decodes and renders once.
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

from infd.data import DataConfig, make_loader

from ..checkpoint import save_model
from ..eval.photos import first_images
from ..eval.recon import reconstruction_grid
from ..losses import AutoencoderLoss, AutoencoderLossConfig
from ..models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from .accel import make_accelerator, set_deterministic
from .ema import EMA
from .guard import NanGuard, StopFlag, ignore_stop_signals
from .optim import OptimizerConfig, make_optimizer
from .run_dir import JsonlLog, write_resolved_config
from .state import TrainResult, latest_state, load_state, rng_state, save_state, set_rng_state

log = logging.getLogger("infd.train")


@dataclass
class AETrainConfig:
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    data: DataConfig = field(default_factory=DataConfig)  # data.batch_size is the per-process batch
    val_data: DataConfig = field(default_factory=lambda: DataConfig(mode="whole", resampled=False))
    loss: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    disc_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    run_dir: str = "runs/ae"
    max_steps: int = 1000
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    grad_clip: float = 0.0  # max grad norm; 0 disables
    ema_decay: float = 0.0  # 0 disables the EMA copy
    log_every: int = 10
    image_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_nonfinite_steps: int = 10
    seed: int = 0
    deterministic: bool = False
    exact_resume: bool = False  # on resume, replay the data stream up to the saved position
    val_sizes: tuple[int, ...] = (256, 512, 1024)
    num_val_images: int = 4


def average_gradients(module: torch.nn.Module, acc):
    """All-reduce (mean) the gradients of a module that is not wrapped in DDP."""
    if acc.num_processes == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            p.grad.copy_(acc.reduce(p.grad, reduction="mean"))


def train_autoencoder(config: AETrainConfig, resume: bool = True, progress: bool = True) -> TrainResult:
    """Run (or continue) stage-1 training up to ``config.max_steps`` (or a stop signal)."""
    run_dir = Path(config.run_dir)
    if config.deterministic:
        set_deterministic(config.seed)
    else:
        torch.manual_seed(config.seed)
    acc = make_accelerator(config.mixed_precision, run_dir)
    model = NeuralFieldAutoencoder(config.model)
    loss_fn = AutoencoderLoss(config.loss).to(acc.device)
    opt_g = make_optimizer(model.parameters(), config.optimizer)
    opt_d = make_optimizer(loss_fn.discriminator.parameters(), config.disc_optimizer)
    ema = EMA(model, config.ema_decay).to(acc.device) if config.ema_decay > 0 else None
    # The discriminator runs in the generator step and twice in its own step, which DDP's one
    # forward / one backward rule forbids; it stays unwrapped and its gradients are averaged by hand.
    model, opt_g, opt_d = acc.prepare(model, opt_g, opt_d)
    disc = loss_fn.discriminator

    step, samples_seen = 0, 0
    state_path = latest_state(run_dir) if resume else None
    if state_path is not None:
        state = load_state(state_path)
        acc.unwrap_model(model).load_state_dict(state["model"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            ema.model.load_state_dict(state["ema"])
        step, samples_seen = state["step"], state["samples_seen"]
        set_rng_state(state["rng"])
        if acc.is_main_process:
            log.info("resumed from %s (step %d)", state_path, step)
    if acc.is_main_process:
        write_resolved_config(run_dir, config)
        acc.init_trackers("ae")
    jsonl = JsonlLog(run_dir, enabled=acc.is_main_process)

    data_seed = config.seed if config.exact_resume or step == 0 else config.seed + step
    # The loader gets its own generator: creating its iterator must not draw from the global RNG,
    # or a resumed run would diverge from an uninterrupted one.
    loader = make_loader(dataclasses.replace(config.data, seed=data_seed), rank=acc.process_index,
                         world_size=acc.num_processes, generator=torch.Generator().manual_seed(data_seed),
                         worker_init_fn=ignore_stop_signals)
    batches = iter(loader)
    if config.exact_resume and samples_seen:
        for _ in range(samples_seen // (config.data.batch_size * acc.num_processes)):
            next(batches)  # replay, so the stream continues exactly where the saved run was

    # The same held-out photos for every reconstruction grid (val_data, or the training shards).
    val_data = config.val_data if config.val_data.urls else config.data
    val_images = first_images(val_data, config.num_val_images) if config.image_every and acc.is_main_process else []

    guard = NanGuard(config.max_nonfinite_steps)
    unwrapped = acc.unwrap_model(model)
    bar = tqdm(total=config.max_steps, initial=step, disable=not (progress and acc.is_main_process),
               desc="stage 1", dynamic_ncols=True)
    t_last, n_last = time.perf_counter(), step

    def checkpoint():
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_state(run_dir, step, {
                "model": unwrapped.state_dict(), "discriminator": disc.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "ema": ema.model.state_dict() if ema is not None else {},
                "step": step, "samples_seen": samples_seen, "rng": rng_state(),
            }, keep=config.keep_checkpoints)
            save_model(ema.model if ema is not None else unwrapped, run_dir / "checkpoints" / "model-latest.safetensors",
                       extra={"step": str(step)})
        acc.wait_for_everyone()

    with StopFlag() as stop:
        while step < config.max_steps and not stop.requested:
            batch = next(batches)
            inp, gt = batch["inp"].to(acc.device), batch["gt"].to(acc.device)
            coord, cell = batch["coord"].to(acc.device), batch["cell"].to(acc.device)
            samples_seen += inp.shape[0] * acc.num_processes

            with acc.autocast():
                rgb, reg = model(inp, coord, cell)
                g_loss, logs = loss_fn.generator_loss(gt, rgb, reg, unwrapped.renderer.last_layer, step)
            ok = guard.check(acc.gather(g_loss.detach()).sum().item(), step)
            opt_g.zero_grad(set_to_none=True)
            if ok:
                acc.backward(g_loss)
                if config.grad_clip > 0:
                    acc.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt_g.step()
                if ema is not None:
                    ema.update(unwrapped)

            if ok and loss_fn.gan_active(step):
                with acc.autocast():
                    d_loss, d_logs = loss_fn.discriminator_loss(gt, rgb.detach(), step)
                opt_d.zero_grad(set_to_none=True)
                acc.backward(d_loss)
                average_gradients(disc, acc)
                opt_d.step()
                logs.update(d_logs)
            step += 1

            if step % config.log_every == 0 or step == config.max_steps:
                now = time.perf_counter()
                rate = (step - n_last) / max(now - t_last, 1e-9)
                t_last, n_last = now, step
                values = {k: float(v) for k, v in logs.items()}
                values["steps_per_s"] = rate
                jsonl.write(step, **values)
                acc.log(values, step=step)
                bar.set_postfix(loss=f"{values.get('loss', float('nan')):.4f}", it_s=f"{rate:.2f}")
            bar.update(1)
            if val_images and step % config.image_every == 0:
                shown = ema.model if ema is not None else unwrapped
                reconstruction_grid(shown, val_data, val_images, config.val_sizes,
                                    run_dir / "images" / f"recon-{step:08d}.png", device=acc.device)
                unwrapped.train()  # the grid switched the model to eval mode
            if step % config.checkpoint_every == 0 or step == config.max_steps:
                checkpoint()
        if stop.requested and step % config.checkpoint_every:
            checkpoint()
    bar.close()
    acc.end_training()
    return TrainResult(run_dir, ema.model if ema is not None else unwrapped, step, acc.num_processes)
