"""Stage 1: train the neural-field autoencoder on multiscale random patches.

One step (INFD, Sec. 3.2): ``rgb = R(D(Q(E(inp))), coord, cell)`` for a batch of patches; the
generator loss is L1 + LPIPS + adaptive-weight GAN + the VQ/KL term; the discriminator step reuses
the same ``rgb`` (detached), so each step encodes, decodes and renders once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from infd.data import DataConfig, make_loader
from infd.renderers import make_renderer

from ..config import ConfigError
from ..eval.photos import first_images, missing_local_shards
from ..eval.recon import reconstruction_grid
from ..losses import AutoencoderLoss, AutoencoderLossConfig
from ..models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from .accel import make_accelerator, seed_run
from .ema import EMA
from .optim import OptimizerConfig, make_optimizer
from .run import TrainingRun, check_loop_config
from .state import CheckpointIO, TrainResult


@dataclass
class AETrainConfig:
    """A stage-1 run (``configs/train/ae_*.yaml``); the loop keys are checked by ``check_loop_config``."""

    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    data: DataConfig = field(default_factory=DataConfig)  # data.batch_size is the per-process batch
    val_data: DataConfig = field(default_factory=lambda: DataConfig(mode="whole", resampled=False))
    loss: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    disc_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    run_dir: str = "runs/ae"  # checkpoints, logs and images; a rerun resumes from it
    max_steps: int = 1000  # total steps of the run, across restarts
    max_minutes: float | None = None  # stop (with a checkpoint) after this long; a rerun continues
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # bf16 on CPU only where lscpu shows avx512_bf16/amx
    channels_last: bool = False  # NHWC convolutions (model and encoder input)
    grad_clip: float = 0.0  # max grad norm; 0 disables
    ema_decay: float = 0.0  # 0 disables the EMA copy
    log_every: int = 10  # steps between log.jsonl / tracker / plain log lines
    trackers: tuple[str, ...] = ("tensorboard",)  # also "wandb"; each needs its package installed
    image_every: int = 500  # steps between reconstruction grids (0: none)
    checkpoint_every: int = 500  # steps between saved states (and exported weights)
    keep_checkpoints: int = 2  # newest states kept in checkpoints/
    max_nonfinite_steps: int = 10  # non-finite losses in a row (skipped steps) before the run stops
    seed: int = 0  # of the weights, the data stream and every random choice
    deterministic: bool = False  # deterministic kernels and seeded Python RNG (bit-exact resume tests)
    exact_resume: bool = False  # on resume, replay the data stream up to the saved position
    val_sizes: tuple[int, ...] = (256, 512, 1024)  # output sizes of the reconstruction grids
    num_val_images: int = 4  # held-out photos in each grid (the first of val_data)
    frozen: tuple[str, ...] = ()  # autoencoder parts kept as loaded, e.g. all but renderer: fine-tune the renderer alone

    def __post_init__(self):
        check_loop_config(self)
        parts = NeuralFieldAutoencoder.PARTS
        unknown = sorted(set(self.frozen) - set(parts))
        if unknown:
            raise ConfigError(f"frozen: unknown part {unknown[0]!r} (choose from {', '.join(parts)})")
        if set(parts) - {"quantize"} <= set(self.frozen):
            raise ConfigError("frozen: every part of the autoencoder is frozen, nothing would train")
        if self.model.max_magnification is None and self.data.patches.max_size:
            # The checkpoint records the largest output / field side the patches reach (the renderer's
            # native range); the field has the encoder input's side.
            self.model.max_magnification = max(1.0, self.data.patches.max_size / self.model.input_size)
        if self.data.patches.context is None:  # render every patch with the margin a full render gives it
            self.data.patches.context = int(make_renderer(self.model.renderer, self.model.field_channels).radius)
        if self.image_every < 0 or self.num_val_images < 0 or not all(s > 0 for s in self.val_sizes):
            raise ValueError("image_every and num_val_images must be >= 0 and val_sizes positive")


def crop_context(rgb: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """The centre ``(B, 3, P, P)`` of a render ``(B, 3, P + 2c, P + 2c)`` of a patch with its context."""
    c = (rgb.shape[-2] - patch[0]) // 2
    return rgb[:, :, c:c + patch[0], c:c + patch[1]]


def average_gradients(module: torch.nn.Module, acc):
    """All-reduce (mean) the gradients of a module that is not wrapped in DDP."""
    if acc.num_processes == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            p.grad.copy_(acc.reduce(p.grad, reduction="mean"))


def discriminator_step(d_loss: torch.Tensor, disc: torch.nn.Module, opt_d, acc) -> bool:
    """One optimiser step of the discriminator on ``d_loss``; ``False`` (no step) when no rank has a patch for
    it (``loss.gan_min_scale``: its ``d_loss`` is a constant zero). A rank without one adds zero gradients to
    the average, so every rank takes the same step and the same collectives."""
    has_rows = d_loss.requires_grad
    any_rows = has_rows
    if acc.num_processes > 1:
        flag = torch.tensor(float(has_rows), device=acc.device)
        any_rows = bool(acc.reduce(flag, reduction="sum").item() > 0)
    if not any_rows:
        return False
    opt_d.zero_grad(set_to_none=True)
    if has_rows:
        acc.backward(d_loss)
    else:
        for p in disc.parameters():
            p.grad = torch.zeros_like(p)
    average_gradients(disc, acc)
    opt_d.step()
    return True


def check_shards_exist(config: AETrainConfig) -> None:
    """``ConfigError`` (one line, on every rank alike) naming a local training or validation shard that is
    not there; remote and pipe URLs are left to the loader."""
    parts = [("data.urls", config.data.urls)]
    if config.image_every and config.val_data.urls:
        parts.append(("val_data.urls", config.val_data.urls))
    for key, urls in parts:
        missing = missing_local_shards(urls)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ConfigError(f"{key}: shard not found: {missing[0]}{more}")


def train_autoencoder(config: AETrainConfig, resume: bool = True, progress: bool = True,
                      init_from: str | None = None, allow_config_change: bool = False) -> TrainResult:
    """Run (or continue) stage-1 training up to ``config.max_steps`` (or a stop signal, or ``max_minutes``)."""
    check_shards_exist(config)
    seed_run(config.seed, config.deterministic)
    acc = make_accelerator(config.mixed_precision, config.run_dir, trackers=config.trackers)
    model = NeuralFieldAutoencoder(config.model)
    for part in config.frozen:
        if getattr(model, part) is not None:
            getattr(model, part).requires_grad_(False)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = AutoencoderLoss(config.loss).to(acc.device)
    opt_g = make_optimizer([p for p in model.parameters() if p.requires_grad], config.optimizer)
    opt_d = make_optimizer(loss_fn.discriminator.parameters(), config.disc_optimizer)
    ema = EMA(model, config.ema_decay).to(acc.device) if config.ema_decay > 0 else None
    # The discriminator runs in the generator step and twice in its own step, which DDP's one
    # forward / one backward rule forbids; it stays unwrapped and its gradients are averaged by hand.
    model, opt_g, opt_d = acc.prepare(model, opt_g, opt_d)
    unwrapped, disc = acc.unwrap_model(model), loss_fn.discriminator
    shown = ema.model if ema is not None else unwrapped  # exported, rendered in the grids and returned
    io = CheckpointIO(config.run_dir, config.keep_checkpoints, model=unwrapped, discriminator=disc, opt_g=opt_g,
                      opt_d=opt_d, ema=ema.model if ema is not None else None)
    run = TrainingRun(config, acc, io, shown, Path(config.run_dir) / "checkpoints" / "model-latest.safetensors",
                      name="ae", desc="stage 1", resume=resume, progress=progress, init_from=init_from,
                      optimizers={"opt_g": config.optimizer, "opt_d": config.disc_optimizer},
                      allow_config_change=allow_config_change, batch_size=config.data.batch_size)
    # The same held-out photos for every reconstruction grid (val_data, or the training shards).
    val_data = config.val_data if config.val_data.urls else config.data
    val_images = first_images(val_data, config.num_val_images) if config.image_every and acc.is_main_process else []
    batches = run.batches(make_loader, config.data)

    with run:
        while run.running():
            batch = next(batches)
            inp, gt = batch["inp"].to(acc.device), batch["gt"].to(acc.device)
            if config.channels_last:
                inp = inp.contiguous(memory_format=torch.channels_last)
            coord, cell = batch["coord"].to(acc.device), batch["cell"].to(acc.device)
            scale = batch["size"].to(acc.device).float() / inp.shape[-1]  # each patch's magnification
            run.samples_seen += inp.shape[0] * acc.num_processes

            with acc.autocast():
                rgb, reg = model(inp, coord, cell)
                rgb = crop_context(rgb, gt.shape[-2:])  # the loss sees the patch, not its context
                g_loss, logs = loss_fn.generator_loss(gt, rgb, reg, unwrapped.renderer.last_layer, run.step, scale)
            ok, _ = run.update(g_loss, model, opt_g, ema)
            if ok and loss_fn.disc_active(run.step):
                with acc.autocast():
                    d_loss, d_logs = loss_fn.discriminator_loss(gt, rgb.detach(), run.step, scale)
                if discriminator_step(d_loss, disc, opt_d, acc):
                    logs.update(d_logs)
            run.step_done(lambda: {k: float(v) for k, v in logs.items()})

            if val_images and run.step % config.image_every == 0:
                grid = reconstruction_grid(shown, val_data, val_images, config.val_sizes,
                                           run.run_dir / "images" / f"recon-{run.step:08d}.png", device=acc.device)
                run.log_image("reconstructions", grid)
                unwrapped.train()  # the grid switched the model to eval mode
            run.checkpoint_if_due()
        run.save_if_stopped()
    del model  # the DDP wrapper: freed before the process group (TrainingRun.finish)
    return run.finish(shown)
