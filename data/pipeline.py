"""Streaming samples from webdataset shards for multi-node, multi-worker training and evaluation.

Stages, per (node, worker): shard list -> tar samples -> shuffle buffer -> decode + sample.

- Shard URLs: a path, a brace pattern (``shards-{000000..000099}.tar``), anything webdataset
  opens (``pipe:curl -s ...``, ``file:``), ``::``-separated lists, or a Python list of those.
- Finite mode (``resampled=False``, evaluation): one pass per epoch. The shard list is shuffled
  with ``(seed, epoch)`` (identical on every node and worker), then shard ``i`` goes to slot
  ``i mod (world_size * num_workers)``, slot = ``rank * num_workers + worker``: every sample is
  delivered exactly once per epoch across all nodes and workers (slots without a shard stay
  idle: use at least as many shards as slots). Call ``set_epoch(e)`` before each epoch.
- Infinite mode (``resampled=True``, training): every slot draws shards with replacement from
  its own random stream, forever.
- All randomness (shard order, shuffle buffer, patch scale/crop/flip) comes from
  ``random.Random("seed/epoch/rank/worker")``: a fixed seed and worker count reproduce the stream.
- A sample that fails (truncated, corrupt, empty, not an image, too large, or dropped by the
  small-image policy) is skipped: counted in ``dataset.stats`` / ``dataset.skipped`` (per process:
  each DataLoader worker has its own copy) and logged as a warning on ``infd.data``. Unreadable
  shards are skipped likewise. Only ``max_failures`` consecutive failures stop the stream, with
  ``DataError`` (a dataset where nothing decodes is a configuration error, not bad luck).
"""
from __future__ import annotations

import collections
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.shardlists import expand_urls as _wds_expand_urls

from infd.config import ConfigError

from .decode import IMAGE_EXTENSIONS, DecodeCache, DecodeConfig, DecodeError
from .patches import PatchConfig, SkipSample, sample_patch, sample_whole
from .shards import read_shard

logger = logging.getLogger("infd.data")
_MAX_RECORDED_SKIPS = 10000


class DataError(RuntimeError):
    """The data stream cannot go on (e.g. ``max_failures`` consecutive samples failed)."""


@dataclass
class DataConfig:
    """A data stream: where the shards are, how they are read, what a sample is.

    urls: shard URLs (see module doc). mode: "patches" (training samples) or "whole" (evaluation).
    resampled: infinite stream of shards drawn with replacement (training) vs one pass (evaluation).
    shard_shuffle: shuffle the shard order (finite mode). shuffle_buffer: samples held for
    shuffling (0 = off); memory is about shuffle_buffer x mean file size per worker.
    seed: base of every random choice. batch_size, num_workers: for ``make_loader``.
    max_failures: consecutive failed samples or shards before the stream raises ``DataError``.
    """

    urls: str | list[str] = ""
    mode: Literal["patches", "whole"] = "patches"
    resampled: bool = True
    shard_shuffle: bool = True
    shuffle_buffer: int = 100
    seed: int = 0
    batch_size: int = 8
    num_workers: int = 2
    max_failures: int = 1000
    patches: PatchConfig = field(default_factory=PatchConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self):
        if self.shuffle_buffer < 0 or self.batch_size <= 0 or self.num_workers < 0 or self.max_failures <= 0:
            raise ValueError("shuffle_buffer and num_workers must be >= 0, batch_size and max_failures > 0")


def expand_urls(urls: str | Path | list) -> list[str]:
    """Shard URLs with brace patterns and ``::`` lists expanded."""
    if isinstance(urls, (str, Path)):
        urls = [urls]
    expanded = [u for url in urls for u in _wds_expand_urls(str(url))]
    return [u for u in expanded if u]


def _shuffled(items: Iterator, size: int, rng: random.Random) -> Iterator:
    """Reservoir-style shuffle buffer of ``size`` items (``size <= 1``: unchanged order)."""
    if size <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


def _image_bytes(sample: dict) -> bytes:
    for ext in IMAGE_EXTENSIONS:
        if ext in sample:
            return sample[ext]
    raise DecodeError(f"no image in sample (files: {', '.join(k for k in sample if not k.startswith('__'))})")


class ShardDataset(IterableDataset):
    """Samples from shards for one node (``rank`` of ``world_size``); see the module doc."""

    def __init__(self, config: DataConfig, rank: int = 0, world_size: int = 1):
        self.config = config
        self.urls = expand_urls(config.urls)
        if not self.urls:
            raise ConfigError("data.urls is empty: give shard paths or a pattern like shards-{000000..000009}.tar")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.stats: collections.Counter = collections.Counter()
        self.skipped: list[tuple[str, str, str]] = []  # (url, key, reason)
        self._failures = 0
        self._cache = None  # this process's DecodeCache (each DataLoader worker has its own copy)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shard order and random draws); call before iterating each epoch.

        DataLoader workers copy the dataset when an epoch starts, so this reaches them unless
        ``persistent_workers=True`` (then recreate the loader per epoch)."""
        self.epoch = epoch

    def shard_urls(self, worker: int = 0, num_workers: int = 1) -> Iterator[str]:
        """The shards slot ``(rank, worker)`` reads: a finite list, or an endless random draw."""
        if self.config.resampled:
            rng = random.Random(f"{self.config.seed}/{self.epoch}/{self.rank}/{worker}")
            while True:
                yield rng.choice(self.urls)
        order = list(self.urls)
        if self.config.shard_shuffle:
            random.Random(f"{self.config.seed}/{self.epoch}/shards").shuffle(order)
        slots = self.world_size * num_workers
        yield from order[self.rank * num_workers + worker::slots]

    def _fail(self, url: str, key: str, reason: str) -> None:
        self.stats["skipped"] += 1
        self._failures += 1
        if len(self.skipped) < _MAX_RECORDED_SKIPS:
            self.skipped.append((url, key, reason))
        logger.warning("skipped %s in %s: %s (%d skipped so far in this process)", key or "shard", url,
                       reason, self.stats["skipped"])
        if self._failures >= self.config.max_failures:
            raise DataError(f"{self._failures} consecutive samples or shards failed; last: {url} {key}: {reason}")

    def _raw_samples(self, urls: Iterator[str]) -> Iterator[dict]:
        """Tar samples of each shard in turn; an unreadable shard (or its unreadable tail) is skipped."""
        for url in urls:
            try:
                yield from read_shard(url, self.config.decode.max_file_bytes,
                                      on_skip=lambda name, reason, url=url: self._fail(url, name, reason))
            except Exception as err:  # noqa: BLE001 - missing, truncated, or failing pipe: next shard
                self.stats["shard_errors"] += 1
                self._fail(url, "", f"unreadable shard: {type(err).__name__}: {err}")

    def transform(self, sample: dict, rng: random.Random) -> dict:
        """One raw tar sample (``{"__key__", "jpg": bytes, ...}``) -> a model sample."""
        data = _image_bytes(sample)
        if self.config.mode == "whole":
            out = sample_whole(data, self.config.patches, self.config.decode)
        else:
            if self._cache is None and self.config.decode.cache_mb > 0:
                self._cache = DecodeCache(self.config.decode.cache_mb)
            out = sample_patch(data, self.config.patches, self.config.decode, rng, self._cache)
        out["key"] = sample["__key__"]
        return out

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(f"{self.config.seed}/{self.epoch}/{self.rank}/{worker}/samples")
        if not self.config.resampled and self.rank * num_workers + worker >= len(self.urls):
            logger.warning("node %d worker %d gets no shard: %d shards for %d (node, worker) slots",
                           self.rank, worker, len(self.urls), self.world_size * num_workers)
        raw = self._raw_samples(self.shard_urls(worker, num_workers))
        for sample in _shuffled(raw, self.config.shuffle_buffer, rng):
            try:
                out = self.transform(sample, rng)
            except Exception as err:  # noqa: BLE001 - one odd file must never kill a worker
                known = isinstance(err, (DecodeError, SkipSample))
                reason = str(err) if known else f"{type(err).__name__}: {err}"
                self._fail(sample.get("__url__", "?"), sample.get("__key__", "?"), reason)
                continue
            self._failures = 0
            self.stats["samples"] += 1
            yield out


def collate_samples(batch: list[dict]) -> dict:
    """Stack tensors of equal shape (``(B, ...)``), ints into a tensor; others stay lists."""
    out = {}
    for key in batch[0]:
        values = [sample[key] for sample in batch]
        if isinstance(values[0], torch.Tensor) and all(v.shape == values[0].shape for v in values):
            out[key] = torch.stack(values)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


def _default_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def make_dataset(config: DataConfig, rank: int | None = None, world_size: int | None = None) -> ShardDataset:
    """The dataset of this node; rank/world_size default to torch.distributed, then $RANK/$WORLD_SIZE."""
    return ShardDataset(config, *_default_rank(rank, world_size))


def make_loader(config: DataConfig, rank: int | None = None, world_size: int | None = None,
                **loader_kwargs) -> DataLoader:
    """A DataLoader of batches: patches mode gives ``inp (B, 3, S, S)``, ``gt (B, 3, P, P)``,
    ``coord (B, P, P, 2)``, ``cell (B, 2)``, ``size (B,)``, ``crop (B, 2)`` and ``key`` (list)."""
    dataset = make_dataset(config, rank, world_size)
    kwargs = dict(batch_size=config.batch_size, num_workers=config.num_workers, collate_fn=collate_samples)
    kwargs.update(loader_kwargs)
    return DataLoader(dataset, **kwargs)
