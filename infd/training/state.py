"""Resumable training state: atomic ``torch.save`` files, loaded with ``weights_only=True``.

A run directory holds ``checkpoints/state-<step>.pt``: everything needed to continue exactly (model,
optimisers, EMA, step, RNG states, data position), as one flat dict ``{part name: state_dict, "step",
"samples_seen", "rng"}``. ``CheckpointIO`` (after EDM2's) owns the named parts of a run and saves and
restores them together; ``latest_state(run_dir)`` finds the newest complete state; partial files never
exist because every write goes to a temp file first and is then renamed.
"""
from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..checkpoint import CheckpointError

STATE_RE = re.compile(r"state-(\d{8})\.pt$")


@dataclass
class TrainResult:
    """What a training loop returns."""

    run_dir: Path
    model: torch.nn.Module  # this process's trained model (the EMA copy when enabled)
    step: int
    num_processes: int = 1


def rng_state() -> dict:
    """Python and torch (CPU, and CUDA when present) RNG states, in a ``weights_only``-safe form."""
    state = {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    """Restore the RNG states saved by ``rng_state``."""
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(run_dir: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as ``checkpoints/state-<step>.pt`` atomically; keep only the newest ``keep``."""
    folder = Path(run_dir) / "checkpoints"
    path = folder / f"state-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_states(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_states(run_dir: str | Path) -> list[Path]:
    """Complete state files of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if STATE_RE.search(p.name))


def latest_state(run_dir: str | Path) -> Path | None:
    """The newest complete state file of a run, or ``None``."""
    states = list_states(run_dir)
    return states[-1] if states else None


def load_state(path: str | Path) -> dict:
    """Load a training state saved by ``save_state`` (tensors and plain containers only); anything else
    named ``state-*.pt`` (another pickle, a truncated file) is one ``CheckpointError`` line."""
    try:
        with warnings.catch_warnings():  # the weights-only unpickler warns about foreign pickle protocols
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # it raises several types, with pages of advice to unpickle anyway
        raise CheckpointError(f"{path} is not a training state (not a tensors-only torch file); move it away "
                              f"or use --no-resume") from None
    missing = [k for k in ("step", "samples_seen", "rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a training state (no {', '.join(missing)}); move it away or use "
                              f"--no-resume")
    return state


class CheckpointIO:
    """The named stateful parts of a run, saved to and restored from one ``state-<step>.pt``.

    A loop registers each part once (``model=..., ema=...``: anything with ``state_dict`` and
    ``load_state_dict``; ``None`` for a disabled part, stored as ``{}`` and skipped on restore). A state
    also holds the run's position (``step``, ``samples_seen``: samples drawn from the data stream by all
    ranks) and the RNG states at the moment of saving, so a restored run draws what the saved one would have.
    """

    def __init__(self, run_dir: str | Path, keep: int = 2, **parts):
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.parts = parts

    def save(self, step: int, samples_seen: int) -> Path:
        """Write every part, the position and the RNG states as ``state-<step>.pt``; keep the newest ``keep``."""
        state = {name: part.state_dict() if part is not None else {} for name, part in self.parts.items()}
        state.update(step=step, samples_seen=samples_seen, rng=rng_state())
        return save_state(self.run_dir, step, state, keep=self.keep)

    def load(self, path: str | Path) -> tuple[int, int]:
        """Restore every registered part and the RNG states from ``path``; returns ``(step, samples_seen)``."""
        state = load_state(path)
        for name, part in self.parts.items():
            if part is not None:
                try:
                    part.load_state_dict(state[name])
                except (KeyError, ValueError, RuntimeError, TypeError) as err:
                    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                    raise CheckpointError(f"{path}: its {name} does not fit this run ({reason})") from None
        set_rng_state(state["rng"])
        return state["step"], state["samples_seen"]

    def latest(self) -> Path | None:
        """The newest complete state of the run, or ``None`` (a fresh run)."""
        return latest_state(self.run_dir)
