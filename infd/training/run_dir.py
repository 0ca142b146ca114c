"""Run directory conventions: resolved config, JSONL log, TensorBoard (through accelerate)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..config import to_dict


def write_resolved_config(run_dir: str | Path, config) -> Path:
    """Write the full resolved config as ``config.yaml`` (and ``config.json``) in the run directory."""
    import yaml

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = to_dict(config)
    (run_dir / "config.json").write_text(json.dumps(data, indent=2) + "\n")
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
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
