"""Stage-1 speed: where the time of one training step goes, and samples per second.

One step of ``ae_loop`` is split into the parts it runs in order: ``data`` (one in-process worker
drawing and collating a batch), ``encoder`` (encoder, quant conv and the posterior sample),
``decoder`` (field decoder), ``renderer``, ``loss`` (L1 + LPIPS), ``discriminator`` (its forward in
the generator loss and its own step, when the GAN is active), ``backward`` and ``optimizer``. Parts
are timed one after the other with the device synchronised, under the config's autocast, on the same
batch shape the run uses. ``samples_per_s`` counts the model's parts (data excluded: the loader's
workers run beside the step) and ``samples_per_s_with_data`` adds one worker's time on top, the rate
of a machine with no core to spare for the loader.

``compare`` interleaves the steps of several configs (A, B, A, B, ...) in one process, so a ratio
between them holds up on a shared machine.
"""
from __future__ import annotations

import itertools
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import torch

from infd.data import make_loader

from ..losses import AutoencoderLoss
from ..models.autoencoder import NeuralFieldAutoencoder
from .ae_loop import AETrainConfig, crop_context
from .optim import make_optimizer

PARTS = ("data", "encoder", "decoder", "renderer", "loss", "discriminator", "backward", "optimizer")


@dataclass
class StepSplit:
    """Seconds of each part of a stage-1 step, one entry per timed step."""

    batch: int
    seconds: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})

    def median(self, part: str) -> float:
        values = self.seconds[part]
        return statistics.median(values) if values else 0.0

    @property
    def model_seconds(self) -> float:
        """Median seconds of the model's parts of a step (everything but data)."""
        return sum(self.median(p) for p in PARTS if p != "data")

    @property
    def samples_per_s(self) -> float:
        return self.batch / self.model_seconds

    @property
    def samples_per_s_with_data(self) -> float:
        return self.batch / (self.model_seconds + self.median("data"))

    def table(self) -> str:
        """One line per part: median milliseconds and its share of the step (data included)."""
        total = self.model_seconds + self.median("data")
        rows = [f"{p:<14}{1000 * self.median(p):9.1f} ms {100 * self.median(p) / total:5.1f}%" for p in PARTS]
        rows.append(f"{'step':<14}{1000 * total:9.1f} ms  batch {self.batch}: {self.samples_per_s:.2f} samples/s "
                    f"(model), {self.samples_per_s_with_data:.2f} with one worker's data time")
        return "\n".join(rows)


class _Clock:
    """Wall time of consecutive parts, synchronising ``device`` before every reading."""

    def __init__(self, device: torch.device):
        self.device = device
        self.times: dict[str, float] = {}

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self):
        self._last = self._now()

    def lap(self, part: str):
        now = self._now()
        self.times[part] = self.times.get(part, 0.0) + now - self._last
        self._last = now


def _autocast(mixed_precision: str, device: torch.device):
    if mixed_precision == "no":
        return nullcontext()
    dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


class StepRunner:
    """The models, optimisers and a batch stream of one config, stepping like ``ae_loop`` does with a
    clock between its parts. ``gan``: time the GAN terms even before ``gan_start_step`` (None: as the
    config's step 0 has them, i.e. active only when ``gan_start_step`` is 0)."""

    def __init__(self, config: AETrainConfig, device: torch.device, gan: bool | None = None, lpips=None):
        self.config, self.device = config, device
        self.model = NeuralFieldAutoencoder(config.model).to(device).train()
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = AutoencoderLoss(config.loss, lpips=lpips).to(device)
        self.opt_g = make_optimizer(self.model.parameters(), config.optimizer)
        self.opt_d = make_optimizer(self.loss_fn.discriminator.parameters(), config.disc_optimizer)
        self.gan = self.loss_fn.gan_active(0) if gan is None else gan
        # one in-process worker, as a DataLoader worker would draw the batches
        self.batches = iter(make_loader(replace(config.data, num_workers=0)))

    def step(self, step: int = 0) -> dict[str, float]:
        """One timed training step; seconds per part."""
        c, clock = self.config, _Clock(self.device)
        clock.start()
        batch = next(self.batches)
        to = dict(device=self.device, non_blocking=True)
        inp, gt, coord, cell = (batch[k].to(**to) for k in ("inp", "gt", "coord", "cell"))
        if c.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        clock.lap("data")
        model, loss_fn = self.model, self.loss_fn
        with _autocast(c.mixed_precision, self.device):
            z, reg = model.bottleneck(model._moments(inp))
            clock.lap("encoder")
            phi = model.decode_field(z)
            clock.lap("decoder")
            rgb = crop_context(model.render(phi, coord, cell), gt.shape[-2:])
            clock.lap("renderer")
            # the generator loss without the GAN term (timed below with the discriminator)
            l1 = (rgb.float() - gt.float()).abs().mean()
            loss = c.loss.l1_weight * l1 + c.loss.reg_weight * reg.float()
            if loss_fn.lpips_active(step):
                loss = loss + c.loss.perceptual_weight * loss_fn.lpips(rgb, gt).mean()
            clock.lap("loss")
            if self.gan:
                from ..losses.gan import hinge_g_loss

                loss = loss + c.loss.gan_weight * hinge_g_loss(loss_fn.discriminator(rgb))
                clock.lap("discriminator")
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        clock.lap("backward")
        self.opt_g.step()
        clock.lap("optimizer")
        if self.gan:
            with _autocast(c.mixed_precision, self.device):
                d_loss, _ = loss_fn.discriminator_loss(gt, rgb.detach(), c.loss.gan_start_step)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            clock.lap("discriminator")
        return clock.times


def compare(configs: dict[str, AETrainConfig], device: torch.device, steps: int = 10, warmup: int = 2,
            gan: bool | None = None, step: int | None = None, lpips=None, progress=None) -> dict[str, StepSplit]:
    """Interleaved timing of each named config: ``steps`` timed steps each after ``warmup`` untimed ones.

    ``step``: the training step whose loss terms to time (LPIPS warm-up, GAN start); None: each config's
    ``max(loss.perceptual_start_step, loss.gan_start_step)`` when ``gan`` is set, else its perceptual start,
    i.e. the step of the full recipe.
    """
    runners = {name: StepRunner(cfg, device, gan, lpips) for name, cfg in configs.items()}
    splits = {name: StepSplit(cfg.data.batch_size) for name, cfg in configs.items()}
    at = {name: (cfg.loss.perceptual_start_step if step is None else step) for name, cfg in configs.items()}
    for i in itertools.count():
        if i >= warmup + steps:
            break
        for name, runner in runners.items():
            times = runner.step(at[name])
            if i >= warmup:
                for part, seconds in times.items():
                    splits[name].seconds[part].append(seconds)
        if progress is not None:
            progress(i + 1, warmup + steps)
    return splits
