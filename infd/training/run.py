"""What every training loop shares around its step: resume, run directory, guarded updates, logging,
checkpoints, stop signals and the time budget.

A stage's loop builds its models and optimisers, registers them in a ``CheckpointIO`` and hands it to a
``TrainingRun``; then::

    with run:                                # SIGTERM/SIGINT end the loop after the current step
        while run.running():                 # max_steps, a stop signal, max_minutes
            ...                              # the stage's step, with run.update(loss, ...)
            run.step_done(lambda: values)    # count; log every log_every steps (with steps_per_s)
            run.checkpoint_if_due()          # every checkpoint_every steps and at max_steps
        run.save_if_stopped()
    return run.finish(model)

The config of either stage has the keys used here: ``run_dir``, ``max_steps``, ``max_minutes``,
``log_every``, ``checkpoint_every``, ``max_nonfinite_steps``, ``grad_clip``, ``ema_decay``, ``seed`` and
``exact_resume``; its ``__post_init__`` calls ``check_loop_config``.
"""
from __future__ import annotations

import gc
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..atomic import remove_stale_temps
from ..checkpoint import CheckpointError, check_model_config, load_state_strict, read_checkpoint, save_model
from .accel import TRACKERS, available_trackers
from .guard import NanGuard, StopFlag
from .run_dir import JsonlLog, RunDirLock, config_changes, read_resolved_config, write_curves, write_resolved_config
from .state import CheckpointIO, TrainResult
from .stream import resumed_batches, shutdown_workers

log = logging.getLogger("infd.train")


def check_loop_config(config):
    """Raise ``ValueError`` for loop settings no run can use (a training config's ``__post_init__``), and
    for model widths no machine builds (``check_model_config``: a ``--set`` typo must not allocate TBs)."""
    for part in ("model", "diffusion"):
        if hasattr(config, part):
            check_model_config(getattr(config, part), part + ".")
    if not 0.0 <= config.ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    for name in ("max_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.max_nonfinite_steps < 0 or not 0 <= config.grad_clip < math.inf:
        raise ValueError(f"max_nonfinite_steps and grad_clip must be >= 0 (grad_clip finite), got "
                         f"{config.max_nonfinite_steps} and {config.grad_clip}")
    if config.max_minutes is not None and config.max_minutes <= 0:
        raise ValueError(f"max_minutes must be positive or null, got {config.max_minutes}")
    unknown = [t for t in config.trackers if t not in TRACKERS]
    if unknown:
        raise ValueError(f"trackers must be among {', '.join(TRACKERS)}, got {unknown}")


def _any_rank(acc, flag: bool) -> bool:
    """Whether ``flag`` holds on any process (so all ranks stop at the same step)."""
    if acc.num_processes == 1:
        return flag
    return bool(acc.gather(torch.tensor([flag], device=acc.device)).any())


def _part_of(state: dict, keys: set[str]) -> tuple[dict, str]:
    """``(state, "")``, or the sub-module of it (``prefix.`` keys, e.g. a bundle's ``autoencoder.``) that
    holds exactly ``keys`` and its prefix; ``state`` unchanged when none does, so the strict load names the
    mismatch."""
    if keys <= state.keys():
        return state, ""
    for prefix in sorted({k.split(".", 1)[0] + "." for k in state if "." in k}):
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if part.keys() == keys:
            return part, prefix
    return state, ""


def init_weights(io: CheckpointIO, path: str | Path) -> int:
    """Load the inference weights at ``path`` into the run's ``model`` (and its EMA copy); its step.

    For a run whose saved state is gone (a new machine): ``path`` is a committed ``.safetensors`` export
    of the same architecture (strict keys: a mismatch is one ``CheckpointError`` line), or a file that holds
    it as a part (a bundle's ``autoencoder.``). The optimisers start fresh; the step counter continues from
    the file's ``step`` metadata (0 when absent). A bundle's step counts its stage 2: a stage-2 run taking the
    bundle's ``backbone.`` goes on from it, a stage-1 run taking its ``autoencoder.`` starts at 0.
    """
    state, metadata = read_checkpoint(path)
    state, prefix = _part_of(state, set(io.parts["model"].state_dict()))
    for name in ("model", "ema"):
        if io.parts.get(name) is not None:
            load_state_strict(io.parts[name], state, source=str(path))
    if prefix == "autoencoder.":
        return 0
    try:
        return int(metadata.get("step", 0))
    except ValueError:
        raise CheckpointError(f"{path}: step metadata {metadata['step']!r} is not a number") from None


def apply_optimizer_settings(io: CheckpointIO, optimizers: dict) -> None:
    """Set each restored optimiser's hyper-parameters (lr, betas, weight decay, eps) from its config:
    ``optimizers`` maps a part name of ``io`` to its ``OptimizerConfig``."""
    for name, settings in optimizers.items():
        optimizer = io.parts.get(name)
        if optimizer is None:
            continue
        for group in optimizer.param_groups:
            group.update(lr=settings.lr, betas=tuple(settings.betas), weight_decay=settings.weight_decay,
                         eps=settings.eps)
            if "initial_lr" in group:
                group["initial_lr"] = settings.lr


class TrainingRun:
    """One run of a training loop: its position, run directory, logs and checkpoints.

    Construction restores the parts registered in ``io`` from the run's latest state (when ``resume``),
    writes the resolved config into the run directory and starts the ``name`` trackers. Every
    checkpoint saves the state and exports ``export_model`` as safetensors at ``export_path``.
    """

    def __init__(self, config, acc, io: CheckpointIO, export_model: torch.nn.Module, export_path: str | Path, *,
                 name: str, desc: str, resume: bool = True, progress: bool = True, init_from: str | Path | None = None,
                 optimizers: dict | None = None, allow_config_change: bool = False, batch_size: int | None = None):
        self.config, self.acc, self.io = config, acc, io
        self.export_model, self.export_path = export_model, Path(export_path)
        self.run_dir = Path(config.run_dir)
        self.step, self.samples_seen = 0, 0  # samples_seen: drawn from the data stream by all ranks
        # One run per directory: a second one would resume the first's state and overwrite its checkpoints.
        self.lock = RunDirLock(self.run_dir).acquire() if acc.is_main_process else None
        if acc.is_main_process:  # a run killed mid-write left them; nobody else writes here now
            for folder in (self.run_dir, self.run_dir / "checkpoints"):
                for path in remove_stale_temps(folder):
                    log.info("removed %s, left by an interrupted write", path)
        try:
            self._restore(resume, init_from, optimizers or {}, allow_config_change)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        if acc.is_main_process:
            write_resolved_config(self.run_dir, config)
            acc.init_trackers(name)
            for tracker in sorted(set(config.trackers) - set(available_trackers(config.trackers))):
                log.warning("%s is not installed, so this run logs to log.jsonl and curves.png only (pip install %s, "
                            "or set trackers: [] to silence this)", tracker, TRACKERS[tracker][0])
            batch = "" if batch_size is None else (f", global batch {batch_size * acc.num_processes} "
                                                    f"({batch_size} per process)")
            log.info("%s: %d process(es) (%s), device %s, mixed precision %s%s; run directory %s", desc,
                     acc.num_processes, acc.distributed_type.value, acc.device, acc.mixed_precision, batch,
                     self.run_dir)
        self.jsonl = JsonlLog(self.run_dir, enabled=acc.is_main_process)
        self.guard = NanGuard(config.max_nonfinite_steps)
        # A bar on a terminal; in a log file (no TTY) or with --no-progress, a plain line every log_every steps.
        self.desc = desc
        self.show_progress = progress and acc.is_main_process and sys.stderr.isatty()
        self.log_lines = acc.is_main_process and not self.show_progress
        self.out_of_time = False  # set when max_minutes ended the loop
        self._streams: list[Iterator[dict]] = []  # shut down when the run's ``with`` block ends

    def _restore(self, resume, init_from, optimizers, allow_config_change):
        """Restore the latest state (checking the config against the saved one) or the ``init_from`` weights."""
        io, acc = self.io, self.acc
        state_path = io.latest() if resume else None
        if state_path is not None:
            changes = self._config_changes()
            if changes and not allow_config_change:
                shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes[:4])
                more = f" (and {len(changes) - 4} more)" if len(changes) > 4 else ""
                raise CheckpointError(f"{self.run_dir} was trained with another config: {shown}{more}; resume with "
                                      "--allow-config-change to apply it, or give another --run-dir")
            self.step, self.samples_seen = io.load(state_path)
            if changes:  # applied explicitly: the restored optimisers take the config's settings
                apply_optimizer_settings(io, optimizers)
                if acc.is_main_process:
                    log.warning("resuming with a changed config: %s", ", ".join(k for k, _, _ in changes))
            if acc.is_main_process:
                log.info("resumed from %s (step %d)", state_path, self.step)
        elif init_from is not None:
            self.step = init_weights(io, init_from)
            if acc.is_main_process:
                log.info("initialised from %s (step %d; optimisers fresh)", init_from, self.step)

    def _config_changes(self) -> list:
        saved = read_resolved_config(self.run_dir)
        if saved is None:
            return []
        from ..config import to_dict

        return config_changes(saved, json.loads(json.dumps(to_dict(self.config))))

    def batches(self, make_loader: Callable, data_config) -> Iterator[dict]:
        """This rank's batches of ``make_loader(data_config)``, continued from the run's position. Their
        worker processes end with the run's ``with`` block, an exception included (take the batches just
        before it, so nothing in between can fail with the workers running)."""
        stream = resumed_batches(make_loader, data_config, seed=self.config.seed,
                                 exact_resume=self.config.exact_resume, step=self.step,
                                 samples_seen=self.samples_seen, rank=self.acc.process_index,
                                 world_size=self.acc.num_processes)
        self._streams.append(stream)
        return stream

    def __enter__(self) -> TrainingRun:
        """Start the loop: catch stop signals, show progress, start the rate clock and the time budget."""
        self._stop = StopFlag().__enter__()
        self.bar = tqdm(total=self.config.max_steps, initial=self.step, disable=not self.show_progress,
                        desc=self.desc, dynamic_ncols=True)
        self._t_last, self._n_last = time.perf_counter(), self.step
        minutes = self.config.max_minutes
        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes
        return self

    def __exit__(self, *exc):
        for stream in self._streams:  # before anything else: an exception must not leave workers behind
            shutdown_workers(stream)
        if exc[0] is not None and self.lock is not None:
            self.lock.release()  # a failed run frees its directory (finish() does it otherwise)
        return self._stop.__exit__(*exc)

    def running(self) -> bool:
        """Whether to take another step: below ``max_steps``, no stop signal, and time left on every rank."""
        if self.step >= self.config.max_steps or self._stop.requested:
            return False
        if self.deadline is not None and _any_rank(self.acc, time.monotonic() > self.deadline):
            log.info("max_minutes=%s reached at step %d: saving a checkpoint and stopping", self.config.max_minutes,
                     self.step)
            self.out_of_time = True
            return False
        return True

    def update(self, loss: torch.Tensor, model, optimizer, ema=None) -> tuple[bool, torch.Tensor | None]:
        """The guarded update of ``model`` from ``loss``: ``(ok, grad_norm)``.

        A loss that is not finite on some rank skips the update (``ok`` False; ``max_nonfinite_steps`` in
        a row raise). Otherwise backward, clip to ``grad_clip`` (when > 0; ``grad_norm`` is the norm before
        clipping, else ``None``), step, and update the EMA copy (``num_updates`` = the step).
        """
        ok = self.guard.check(self.acc.gather(loss.detach()).mean().item(), self.step)
        optimizer.zero_grad(set_to_none=True)
        grad_norm = None
        if ok:
            self.acc.backward(loss)
            if self.config.grad_clip > 0:
                grad_norm = self.acc.clip_grad_norm_(model.parameters(), self.config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(self.acc.unwrap_model(model), num_updates=self.step)
        return ok, grad_norm

    def step_done(self, values: Callable[[], dict]):
        """Count a step; every ``log_every`` steps and at ``max_steps``, log ``values()`` and ``steps_per_s``
        (steps since the last log line over their wall time) to log.jsonl, the trackers and the bar."""
        self.step += 1
        if self.step % self.config.log_every == 0 or self.step == self.config.max_steps:
            now = time.perf_counter()
            rate = (self.step - self._n_last) / max(now - self._t_last, 1e-9)
            self._t_last, self._n_last = now, self.step
            row = {**values(), "steps_per_s": rate}
            self.jsonl.write(self.step, **row)
            self.acc.log(row, step=self.step)
            self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", it_s=f"{rate:.2f}")
            if self.log_lines:
                shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, (int, float)))
                log.info("%s step %d/%d %s", self.desc, self.step, self.config.max_steps, shown)
        self.bar.update(1)

    def log_image(self, name: str, path: str | Path) -> None:
        """Send a grid the run wrote (``path``, a PNG) to the trackers that show images (main process)."""
        trackers = [t for t in self.acc.trackers if t.name in TRACKERS] if self.acc.is_main_process else []
        if not trackers:
            return
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        for tracker in trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({name: array[None]}, step=self.step, dataformats="NHWC")
            else:
                tracker.log_images({name: [array]}, step=self.step)

    def checkpoint(self):
        """Save the state and export the model (main process); every rank waits for it."""
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            self.io.save(self.step, self.samples_seen)
            save_model(self.export_model, self.export_path, extra={"step": str(self.step)})
            write_curves(self.run_dir)
        self.acc.wait_for_everyone()

    def checkpoint_if_due(self):
        """A checkpoint every ``checkpoint_every`` steps and at ``max_steps``."""
        if self.step % self.config.checkpoint_every == 0 or self.step == self.config.max_steps:
            self.checkpoint()

    def save_if_stopped(self):
        """After the loop: a checkpoint when a signal or ``max_minutes`` ended it between checkpoints."""
        if (self._stop.requested or self.out_of_time) and self.step % self.config.checkpoint_every:
            self.checkpoint()

    def finish(self, model: torch.nn.Module) -> TrainResult:
        """Close the progress bar and the trackers and release the run directory; ``model`` is what the run
        returns."""
        self.bar.close()
        for tracker in self.acc.trackers:
            tracker.finish()
        if self.acc.num_processes > 1:
            # Free the DDP wrapper (the loops drop theirs first) before the process group: freeing the
            # group from DDP's reducer joins gloo's threads with the GIL held while a thread may need it to
            # release a tensor, a deadlock seen as an occasional hang at the end of two-rank runs (pytorch
            # issue 56297). Freed by destroy_process_group, the group's threads end without the GIL.
            self.acc.wait_for_everyone()
            self.acc.free_memory()
            gc.collect()
        self.acc.state.destroy_process_group()
        if self.lock is not None:
            self.lock.release()
        return TrainResult(self.run_dir, model, self.step, self.acc.num_processes)
