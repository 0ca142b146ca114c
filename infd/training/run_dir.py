"""Run directory conventions: one run at a time (a lock), resolved config, JSONL log, TensorBoard
(through accelerate)."""
from __future__ import annotations

import fcntl
import json
import math
import os
import time
from pathlib import Path

from ..config import ConfigError, to_dict

# Keys a resumed run may change without --allow-config-change: how long and how it runs and reports, not
# what it trains (prefix matches on dotted keys).
RESUMABLE_KEYS = ("run_dir", "max_steps", "max_minutes", "log_every", "image_every", "sample_every",
                  "checkpoint_every", "keep_checkpoints", "max_nonfinite_steps", "val_sizes", "num_val_images",
                  "sample_sizes", "num_sample_images", "sample_steps", "sample_sampler", "data.num_workers",
                  "latents.num_workers", "trackers")


class RunDirBusy(ConfigError):
    """Another process holds the run directory's lock."""


class RunDirLock:
    """An exclusive ``flock`` on ``run_dir/lock`` for the life of a run (released when the process ends,
    kill -9 included). The file holds the holder's PID, named in the error a second run gets."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "lock"
        self.fd: int | None = None

    def acquire(self) -> RunDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunDirBusy(f"run directory {self.path.parent} is in use by another training process (PID {holder}); "
                             "wait for it to end or give another --run-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None


def _flatten(data, prefix: str = "") -> dict:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def config_changes(saved: dict, current: dict) -> list[tuple[str, object, object]]:
    """``(dotted key, saved value, current value)`` for every key whose value differs, except the
    ``RESUMABLE_KEYS``; keys only one side has count as changes."""
    old, new = _flatten(saved), _flatten(current)
    free = tuple(RESUMABLE_KEYS)
    return [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k) and not any(k == f or k.startswith(f + ".") for f in free)]


def read_resolved_config(run_dir: str | Path) -> dict | None:
    """The resolved config a run last started with (``config.json``), or ``None``."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_resolved_config(run_dir: str | Path, config) -> Path:
    """Write the full resolved config as ``config.yaml`` (and ``config.json``) in the run directory."""
    import yaml

    from ..atomic import atomic_path

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = to_dict(config)
    with atomic_path(run_dir / "config.json") as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    path = run_dir / "config.yaml"
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class JsonlLog:
    """Appends one JSON object per line to ``log.jsonl`` (flushed, so a killed run keeps its log)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.path = Path(run_dir) / "log.jsonl"
        self.enabled = enabled

    def write(self, step: int, **values):
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time(), 3)}
        row.update({k: (float(v) if hasattr(v, "__float__") else v) for k, v in values.items()})
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_log(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


CURVE_SKIP = {"step", "time", "steps_per_s", "gan_weight", "reg", "grad_norm"}  # not losses, or another scale
CURVE_POINTS = 200  # the log is averaged into at most this many points per curve


def binned(points: list[tuple[float, float]], per_bin: int) -> list[tuple[float, float]]:
    """``(x of the bin's last point, mean y)`` of consecutive bins of ``per_bin`` points."""
    bins = [points[i:i + per_bin] for i in range(0, len(points), per_bin)]
    return [(b[-1][0], sum(v for _, v in b) / len(b)) for b in bins]


def write_curves(run_dir: str | Path) -> Path | None:
    """``curves.png`` in the run directory: each logged loss against the step (from ``log.jsonl``,
    averaged into at most ``CURVE_POINTS`` bins), or ``None`` while the log is empty."""
    from ..eval.report import line_plot

    rows = read_log(run_dir)
    keys = sorted({k for row in rows for k, v in row.items()
                   if k not in CURVE_SKIP and isinstance(v, (int, float)) and math.isfinite(v)})
    if not rows or not keys:
        return None
    per_bin = max(1, math.ceil(len(rows) / CURVE_POINTS))
    series = {key: binned([(row["step"], row[key]) for row in rows if isinstance(row.get(key), (int, float))], per_bin)
              for key in keys}
    title = "training losses" + (f" (means of {per_bin} log lines)" if per_bin > 1 else "")
    return line_plot(Path(run_dir) / "curves.png", series, title, "step", "loss")


def training_minutes(rows: list[dict]) -> list[float]:
    """Minutes of training up to each log row, from the steps and the logged ``steps_per_s`` (so the time
    between a stop and a resume does not count)."""
    out, minutes, previous = [], 0.0, 0
    for row in rows:
        speed = row.get("steps_per_s")
        if isinstance(speed, (int, float)) and speed > 0:
            minutes += max(0, row["step"] - previous) / speed / 60
        previous = row["step"]
        out.append(minutes)
    return out
