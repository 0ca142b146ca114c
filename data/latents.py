"""The latent cache: autoencoder latents of a photo set, stored once, read by stage-2 training.

Shards are webdataset tars (``data.shards.ShardWriter``, deterministic bytes). Each sample is
``{key}.latent.safetensors`` (one float32 tensor ``z`` of shape ``(C, h, w)``) plus ``{key}.json``:
``key`` and ``shard`` (the source image and its shard), ``flip`` (the mirrored image) and ``label``
(an integer, only when the image shard's json had one). Beside the shards, ``stats.json``
(``LatentStats``) holds the latents' per-channel mean and std, the global mean and std, the latent
shape and the autoencoder checkpoint with its sha256, so stage 2 knows its normalisation and can
check that it decodes with the autoencoder that made the cache.

``make_latent_loader(config)`` streams ``{"z" (B, C, h, w), "label" (B,) (-1 = none), "key"}`` with
the image pipeline's shard handling (ranks, workers, resampling, shuffle buffer, skipped samples).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from infd.config import ConfigError, from_dict, to_dict

from .pipeline import DataConfig, ShardDataset, collate_samples, expand_urls
from .shards import ShardWriter

LATENT_EXT = "latent.safetensors"
STATS_NAME = "stats.json"
STATS_FORMAT = "infd-latents/1"
NO_LABEL = -1


class LatentCacheError(ValueError):
    """A missing, unreadable or inconsistent latent cache."""


def latent_to_bytes(z: torch.Tensor) -> bytes:
    """One latent ``(C, h, w)`` as safetensors bytes (float32, tensor name ``z``)."""
    from safetensors.torch import save

    if z.ndim != 3:
        raise ValueError(f"a cached latent is (C, h, w), got shape {tuple(z.shape)}")
    return save({"z": z.detach().to("cpu", torch.float32).contiguous()})


def latent_from_bytes(data: bytes) -> torch.Tensor:
    """Inverse of ``latent_to_bytes``: the float32 ``(C, h, w)`` tensor."""
    from safetensors.torch import load

    tensors = load(data)
    if "z" not in tensors:
        raise LatentCacheError(f"latent sample has no tensor 'z' (has: {', '.join(tensors) or 'nothing'})")
    return tensors["z"]


class RunningMoments:
    """Per-channel mean and variance of latent batches, merged exactly in float64 (Chan et al. 1979)."""

    def __init__(self):
        self.count = 0  # values per channel
        self.mean: torch.Tensor | None = None  # (C,)
        self.m2: torch.Tensor | None = None  # (C,) sum of squared deviations

    def update(self, z: torch.Tensor):
        """Add latents ``z (B, C, h, w)``."""
        z = z.detach().to("cpu", torch.float64)
        n_b = z.shape[0] * z.shape[2] * z.shape[3]
        mean_b = z.mean(dim=(0, 2, 3))
        m2_b = (z - mean_b.view(1, -1, 1, 1)).pow(2).sum(dim=(0, 2, 3))
        if self.mean is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta.pow(2) * (self.count * n_b / n)
        self.count = n

    def result(self) -> dict:
        """``mean``/``std`` per channel and ``global_mean``/``global_std`` over all values (population std)."""
        if self.mean is None:
            raise LatentCacheError("no latents were added, so there are no statistics")
        var = self.m2 / self.count
        global_mean = self.mean.mean()
        global_var = (var + (self.mean - global_mean).pow(2)).mean()  # every channel has `count` values
        return {"mean": self.mean.tolist(), "std": var.sqrt().tolist(),
                "global_mean": float(global_mean), "global_std": float(global_var.sqrt())}


@dataclass
class LatentStats:
    """``stats.json`` of a latent cache."""

    latent_shape: tuple[int, int, int]  # (C, h, w)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    global_mean: float
    global_std: float
    num_latents: int
    num_images: int
    autoencoder: str = ""
    autoencoder_sha256: str = ""
    flip: bool = False
    views: int = 0  # random views per photo (data.views; 0: the whole image)
    view_seed: int = 0
    view_augment: dict = field(default_factory=dict)  # the AugmentConfig of the views
    num_labelled: int = 0  # latents with a label
    num_skipped: int = 0
    shards: tuple[str, ...] = ()
    encoder_input: dict = field(default_factory=dict)  # the PatchConfig of the encoder input
    format: str = STATS_FORMAT

    def __post_init__(self):
        channels = self.latent_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean and std need {channels} values (latent_shape {list(self.latent_shape)})")
        if self.format != STATS_FORMAT:
            raise ValueError(f"unknown latent stats format {self.format!r} (expected {STATS_FORMAT!r})")

    def shift_scale(self, norm: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(shift, scale)`` with ``x = (z - shift) / scale`` near unit variance.

        ``per_channel``: each channel's mean and std; ``global``: no shift and the global std (LDM's
        ``scale_factor = 1 / std``).
        """
        if norm == "per_channel":
            return tuple(self.mean), tuple(max(s, 1e-8) for s in self.std)
        if norm == "global":
            return (0.0,), (max(self.global_std, 1e-8),)
        raise ValueError(f"latent normalisation must be per_channel or global, got {norm!r}")


def stats_path_for(urls) -> Path:
    """Where the stats of a shard set live: ``stats.json`` beside its first shard."""
    expanded = expand_urls(urls)
    if not expanded:
        raise LatentCacheError("no latent shards given")
    return Path(expanded[0].removeprefix("file:")).parent / STATS_NAME


def write_stats(path: str | Path, stats: LatentStats) -> Path:
    from infd.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_dict(stats), indent=2) + "\n")
    return path


def load_stats(path: str | Path) -> LatentStats:
    """Read ``stats.json``; a missing or malformed file is one ``LatentCacheError`` line."""
    path = Path(path)
    if not path.is_file():
        raise LatentCacheError(f"latent cache statistics not found: {path} (the cache is incomplete or missing: "
                               f"make it with tools/cache_latents.py)")
    try:
        return from_dict(LatentStats, json.loads(path.read_text()))
    except (json.JSONDecodeError, ConfigError, TypeError) as err:
        raise LatentCacheError(f"bad latent cache statistics {path}: {str(err).splitlines()[0]}") from None


class LatentShardWriter:
    """Writes latents with their json into shards ``pattern % i`` and keeps their running moments."""

    def __init__(self, pattern: str, max_count: int = 10000):
        self._writer = ShardWriter(pattern, max_count=max_count)
        self.moments = RunningMoments()
        self.count = 0
        self.shape: tuple[int, ...] | None = None

    def write(self, key: str, z: torch.Tensor, meta: dict):
        """One latent ``z (C, h, w)`` under ``key``; ``meta`` goes to ``{key}.json``."""
        if self.shape is None:
            self.shape = tuple(z.shape)
        elif tuple(z.shape) != self.shape:
            raise LatentCacheError(f"latent {key} has shape {tuple(z.shape)}, the cache holds {self.shape}")
        self._writer.write(key, {LATENT_EXT: latent_to_bytes(z), "json": json.dumps(meta, sort_keys=True).encode()})
        self.moments.update(z[None])
        self.count += 1

    def close(self) -> list[str]:
        return self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._writer.__exit__(*exc)


@dataclass
class LatentDataConfig:
    """A stream of cached latents for stage 2.

    urls: latent shard URLs (paths, brace patterns, lists). stats: ``stats.json`` (default: beside the
    first shard). resampled: endless stream of shards drawn with replacement (training). The other
    fields are as in ``data.DataConfig``; ``batch_size`` is per process.
    """

    urls: str | list[str] = ""
    stats: str | None = None
    batch_size: int = 32  # latents per step and process
    shuffle_buffer: int = 1000  # latents held for shuffling (0: off)
    num_workers: int = 0  # loader processes (reading a cached latent costs microseconds)
    resampled: bool = True
    seed: int = 0  # of the shard draws and the shuffle
    max_failures: int = 100  # consecutive unreadable latents before the stream stops

    def __post_init__(self):
        if self.batch_size <= 0 or self.shuffle_buffer < 0 or self.num_workers < 0 or self.max_failures <= 0:
            raise ValueError("latents: batch_size and max_failures must be > 0, shuffle_buffer and num_workers >= 0")

    def stats_path(self) -> Path:
        return Path(self.stats) if self.stats else stats_path_for(self.urls)

    def as_data_config(self) -> DataConfig:
        return DataConfig(urls=self.urls, resampled=self.resampled, shuffle_buffer=self.shuffle_buffer,
                          seed=self.seed, batch_size=self.batch_size, num_workers=self.num_workers,
                          max_failures=self.max_failures)


class LatentShardDataset(ShardDataset):
    """``ShardDataset`` over latent shards: samples ``{"z" (C, h, w), "label" int (-1: none), "key"}``."""

    def transform(self, sample: dict, rng) -> dict:
        if LATENT_EXT not in sample:
            raise LatentCacheError(f"no {LATENT_EXT} in sample (files: "
                                   f"{', '.join(k for k in sample if not k.startswith('__'))})")
        meta = json.loads(sample["json"]) if "json" in sample else {}
        label = meta.get("label")
        return {"z": latent_from_bytes(sample[LATENT_EXT]), "label": NO_LABEL if label is None else int(label),
                "key": sample["__key__"]}


def check_local_shards(urls) -> list[str]:
    """Expanded shard URLs; local paths must exist (``LatentCacheError`` names the first missing one)."""
    expanded = expand_urls(urls)
    if not expanded:
        raise LatentCacheError("latents.urls is empty: give the latent shards, e.g. latents/photos-{000000..000002}.tar")
    for url in expanded:
        path = url.removeprefix("file:")
        if ":" not in path.split("/")[0] and not Path(path).is_file():
            raise LatentCacheError(f"latent shard not found: {path} (make the cache with tools/cache_latents.py)")
    return expanded


def make_latent_dataset(config: LatentDataConfig, rank: int = 0, world_size: int = 1) -> LatentShardDataset:
    check_local_shards(config.urls)
    return LatentShardDataset(config.as_data_config(), rank, world_size)


def make_latent_loader(config: LatentDataConfig, rank: int = 0, world_size: int = 1, **loader_kwargs) -> DataLoader:
    """Batches ``{"z" (B, C, h, w), "label" (B,), "key" [B]}`` of this rank's share of the stream."""
    kwargs = dict(batch_size=config.batch_size, num_workers=config.num_workers, collate_fn=collate_samples)
    kwargs.update(loader_kwargs)
    return DataLoader(make_latent_dataset(config, rank, world_size), **kwargs)
