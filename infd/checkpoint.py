"""Inference checkpoints: safetensors weights with the model's kind and config in the metadata.

``save_model(model, path)`` writes atomically (temp file + ``os.replace``). ``load_model(path)``
rebuilds the model from the stored config and loads the weights with strict key matching; any
mismatch is one ``CheckpointError`` line naming the missing, unexpected and mis-shaped keys.
Nothing here unpickles: safetensors holds only tensors and strings.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_path
from .config import ConfigError, from_dict, to_dict
from .registry import MODEL_KINDS, import_builtin_models, kind_of

FORMAT = "infd/1"


class CheckpointError(RuntimeError):
    """A missing, unreadable or mismatched checkpoint."""


def save_model(model: nn.Module, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to a ``.safetensors`` file, atomically."""
    from safetensors.torch import save_file

    metadata = {"format": FORMAT, "kind": kind_of(model), "config": json.dumps(to_dict(model.config))}
    metadata.update(extra or {})
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return Path(path)


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file (identifies the exact weights a derived artefact was made with)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)`` of a safetensors file, with one-line errors for bad files."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several types for corrupt headers/data
        raise CheckpointError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None
    return state, metadata


def _short(keys, limit=5) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint"):
    """Load ``state`` into ``model``; any key or shape mismatch raises one readable ``CheckpointError``."""
    own = model.state_dict()
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(own.keys() & state.keys()) if own[k].shape != state[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {_short(shapes, 3)}")
    if problems:
        raise CheckpointError(f"{source} does not match {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


MAX_CONFIG_INT = 1 << 20  # any integer in a model config (steps, codes, classes, ...)
MAX_WIDTH = 8192  # channels / hidden widths (times their multipliers): a 3x3 conv of 8192^2 is 2.4 GB
MAX_INPUT_SIDE = 16384  # input_size and other image sides


def check_model_config(config, path: str = "") -> None:
    """``ConfigError`` for a model config no machine builds or runs: negative integers, integers past
    ``MAX_CONFIG_INT``, widths past ``MAX_WIDTH`` (``channels x max(channel_mult)`` included), image sides
    past ``MAX_INPUT_SIDE``. Checked before building, so hostile metadata cannot allocate terabytes."""
    import dataclasses

    if not dataclasses.is_dataclass(config):
        return
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), f"{path}{f.name}"
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if dataclasses.is_dataclass(v):
                check_model_config(v, key + ".")
            elif isinstance(v, dict):
                check_model_config_dict(v, key + ".")
            elif isinstance(v, int) and not isinstance(v, bool):
                if not 0 <= v <= MAX_CONFIG_INT:
                    raise ConfigError(f"model config {key} = {v} is out of range [0, {MAX_CONFIG_INT}]")
                if ("channels" in f.name or f.name in ("hidden", "width", "dim")) and v > MAX_WIDTH:
                    raise ConfigError(f"model config {key} = {v} is wider than {MAX_WIDTH}")
                if f.name.endswith("size") and v > MAX_INPUT_SIDE:
                    raise ConfigError(f"model config {key} = {v} is larger than {MAX_INPUT_SIDE}")
    channels, mult = getattr(config, "channels", None), getattr(config, "channel_mult", None)
    if isinstance(channels, int) and mult and channels * max(mult) > MAX_WIDTH:
        raise ConfigError(f"model config {path}channels x max(channel_mult) = {channels * max(mult)} is wider "
                          f"than {MAX_WIDTH}")


def check_model_config_dict(data: dict, path: str) -> None:
    """``check_model_config`` for a free-form ``args`` mapping (e.g. a renderer's)."""
    for name, v in data.items():
        key = f"{path}{name}"
        if isinstance(v, dict):
            check_model_config_dict(v, key + ".")
        elif isinstance(v, int) and not isinstance(v, bool):
            if not 0 <= v <= MAX_CONFIG_INT or ("channels" in name or name == "hidden") and v > MAX_WIDTH:
                raise ConfigError(f"model config {key} = {v} is out of range")


def build_model(kind: str, config: dict | object) -> nn.Module:
    """Instantiate a registered model kind from a config dict or dataclass (checked by
    ``check_model_config`` first)."""
    import_builtin_models()
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind '{kind}' (known: {', '.join(sorted(MODEL_KINDS))})")
    cls, config_cls = MODEL_KINDS[kind]
    config = config if isinstance(config, config_cls) else from_dict(config_cls, config)
    check_model_config(config)
    return cls(config)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored at ``path`` (kind + config from metadata), in eval mode on ``device``."""
    state, metadata = read_checkpoint(path)
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:  # it would render black images without a word
        raise CheckpointError(f"{path}: weight {bad} holds NaN or infinite values")
    if metadata.get("format") != FORMAT or "kind" not in metadata or "config" not in metadata:
        raise CheckpointError(f"{path} is not an infd checkpoint (no kind/config metadata)")
    try:
        model = build_model(metadata["kind"], json.loads(metadata["config"]))
    except RecursionError:
        raise CheckpointError(f"{path}: stored config is nested too deeply") from None
    except (ConfigError, ValueError, TypeError, RuntimeError, OverflowError) as err:  # JSON errors are ValueErrors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise CheckpointError(f"{path}: stored config is invalid: {first}") from None
    load_state_strict(model, state, source=str(path))
    return model.to(device).eval()
