"""Encode every image of a shard set once into latent shards (``data.latents``) and their statistics.

Each image goes through the image pipeline in whole-image mode (``data.patches.sample_whole``): the
encoder input is the whole square resized to the encoder's size, exactly stage 1's ``inp``. Corrupt
or unreadable images are skipped and counted by the pipeline. With ``flip`` the mirrored input is
encoded too and stored as its own sample ``{key}_flip`` (a cheap augmentation for tiny datasets).
Labels come from the image shard's json ``label`` field when present.

With ``views = N`` each photo gives N random square views instead (``data.views``: random crops at
random scales, augmented by ``view_augment``), stored as ``{key}_v0000`` ... with the view's box
(``view``: left, top, side in source pixels) and augmentation in its json; deterministic from ``seed``.

The encoder is any callable ``encode(inp (B, 3, S, S) in [-1, 1]) -> z (B, C, h, w)``, so this module
does not depend on the model code; ``tools/cache_latents.py`` passes an autoencoder's ``encode``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from .augment import AugmentConfig
from .decode import DecodeConfig
from .latents import NO_LABEL, LatentShardWriter, LatentStats, write_stats
from .patches import PatchConfig
from .pipeline import DataConfig, ShardDataset, _image_bytes, expand_urls
from .views import sample_views, view_rng

_STATS_KEY = "__worker_stats__"


class LabelledImageDataset(ShardDataset):
    """Whole-image samples ``{"inp" (3, S, S), "key", "shard", "label"}`` of a finite shard set, in
    shard order; each worker ends its stream with a record of its skip counts (``_STATS_KEY``)."""

    views: int = 0  # set by cache_latents: random views per photo (0: the whole image)
    view_augment: AugmentConfig | None = None
    view_seed: int = 0

    def transform(self, sample: dict, rng) -> dict:
        meta = json.loads(sample["json"]) if "json" in sample else {}
        label = meta.get("label")
        record = {"key": sample["__key__"], "shard": sample["__url__"],
                  "label": NO_LABEL if label is None else int(label)}
        if self.views:
            c = self.config
            record["views"] = sample_views(_image_bytes(sample), self.views, c.patches.encoder_size,
                                           view_rng(self.view_seed, sample["__key__"]), self.view_augment,
                                           c.decode, c.patches.kernel)
            return record
        return {"inp": super().transform(sample, rng)["inp"], **record}

    def __iter__(self) -> Iterator[dict]:
        yield from super().__iter__()
        yield {_STATS_KEY: dict(self.stats), "skipped": list(self.skipped)}


@dataclass
class CacheSummary:
    """What ``cache_latents`` did."""

    num_images: int = 0
    num_latents: int = 0
    num_skipped: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (shard, key, reason)
    shards: list[str] = field(default_factory=list)
    stats_path: Path | None = None
    stats: LatentStats | None = None


def _expand_views(record: dict) -> list[dict]:
    """A photo record with ``views`` -> one record per view (its own name and json); else the record."""
    if "views" not in record:
        return [record]
    base = {k: v for k, v in record.items() if k != "views"}
    return [{**base, "inp": v["inp"], "name": f"{record['key']}_v{i:04d}",
             "meta": {"view": v["view"], "augment": v["augment"]}} for i, v in enumerate(record["views"])]


def image_data_config(urls, encoder_size: int, num_workers: int = 0, patches: PatchConfig | None = None,
                      decode: DecodeConfig | None = None) -> DataConfig:
    """A finite, ordered, whole-image stream whose ``inp`` is the encoder input of side ``encoder_size``."""
    patches = patches or PatchConfig()
    # gt is not used: make it the encoder's size, the cheapest resize the whole-image sampler offers
    patches = dataclasses.replace(patches, encoder_size=encoder_size, patch_size=min(patches.patch_size, encoder_size),
                                  max_size=None, whole_size=encoder_size, flip=False)
    return DataConfig(urls=urls, mode="whole", resampled=False, shard_shuffle=False, shuffle_buffer=0,
                      num_workers=num_workers, patches=patches, decode=decode or DecodeConfig())


def _records(config: DataConfig, views: int = 0, view_augment: AugmentConfig | None = None,
             view_seed: int = 0) -> Iterator[dict]:
    dataset = LabelledImageDataset(config, rank=0, world_size=1)
    dataset.views, dataset.view_augment, dataset.view_seed = views, view_augment, view_seed
    # batch_size=None: workers decode single images, batches are formed here (so the per-worker skip
    # records pass through untouched)
    yield from DataLoader(dataset, batch_size=None, num_workers=config.num_workers)


def cache_latents(encode: Callable[[torch.Tensor], torch.Tensor], urls, out_pattern: str, *, encoder_size: int,
                  batch_size: int = 16, flip: bool = False, num_workers: int = 0, max_count: int = 10000,
                  patches: PatchConfig | None = None, decode: DecodeConfig | None = None,
                  stats_extra: dict | None = None, views: int = 0, view_augment: AugmentConfig | None = None,
                  seed: int = 0, on_batch: Callable[[int, int], None] | None = None) -> CacheSummary:
    """Encode every image of ``urls`` into shards ``out_pattern % i`` and write ``stats.json`` beside them.

    ``encode`` maps ``(B, 3, S, S)`` float inputs to latents ``(B, C, h, w)``. ``stats_extra`` adds
    fields to the stats (``autoencoder``, ``autoencoder_sha256``). ``on_batch(images, skipped)`` reports
    progress after every encoded batch (counts so far).

    ``stats.json`` is the cache's completion mark: an older one is removed before the first shard is
    replaced and the new one is written last, so an interrupted cache has none (and stage 2 refuses it).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if views < 0:
        raise ValueError(f"views must be >= 0, got {views}")
    if views and flip:
        raise ValueError("--flip applies to whole images; views are flipped by their augmentation (--view-hflip)")
    if not expand_urls(urls):
        raise ValueError("no image shards given")
    config = image_data_config(urls, encoder_size, num_workers, patches, decode)
    summary = CacheSummary()
    seen: set[str] = set()
    pending: list[dict] = []

    def unique(key: str) -> str:
        name, n = key, 1
        while name in seen:  # the same key in two source shards: keep both
            name, n = f"{key}_dup{n}", n + 1
        seen.add(name)
        return name

    (Path(out_pattern % 0).parent / "stats.json").unlink(missing_ok=True)
    with LatentShardWriter(out_pattern, max_count) as writer:
        def flush():
            inp = torch.stack([r["inp"] for r in pending])  # (B, 3, S, S)
            flips = [False] * len(pending)
            if flip:
                inp = torch.cat([inp, inp.flip(-1)])
                flips += [True] * len(pending)
            with torch.no_grad():
                z = encode(inp).detach().float().cpu()  # (B or 2B, C, h, w)
            for i, is_flip in enumerate(flips):
                record = pending[i % len(pending)]
                meta = {"key": record["key"], "shard": record["shard"], "flip": is_flip, **record.get("meta", {})}
                if record["label"] != NO_LABEL:
                    meta["label"] = record["label"]
                name = record.get("name", record["key"]) + ("_flip" if is_flip else "")
                writer.write(unique(name), z[i], meta)
            if not views:  # views count their photo once, as it arrives
                summary.num_images += len(pending)
            summary.num_latents += len(flips)
            pending.clear()
            if on_batch is not None:
                on_batch(summary.num_images, summary.num_skipped)

        labelled = 0
        for record in _records(config, views, view_augment, seed):
            if _STATS_KEY in record:
                summary.num_skipped += record[_STATS_KEY].get("skipped", 0)
                summary.skipped += [tuple(s) for s in record["skipped"]]
                continue
            summary.num_images += bool(views)
            for one in _expand_views(record):
                labelled += (one["label"] != NO_LABEL) * (2 if flip else 1)  # latents with a label
                pending.append(one)
                if len(pending) == batch_size:
                    flush()
        if pending:
            flush()
        if writer.count == 0:
            raise ValueError(f"no image of {urls} could be encoded ({summary.num_skipped} skipped)")
    summary.shards = writer.close()
    moments = writer.moments.result()
    stats = LatentStats(latent_shape=tuple(writer.shape), num_latents=summary.num_latents,
                        num_images=summary.num_images, flip=flip, views=views, view_seed=seed,
                        view_augment=dataclasses.asdict(view_augment or AugmentConfig()) if views else {},
                        num_labelled=labelled,
                        num_skipped=summary.num_skipped, shards=tuple(Path(s).name for s in summary.shards),
                        encoder_input=dataclasses.asdict(config.patches), **moments, **(stats_extra or {}))
    summary.stats_path = write_stats(Path(summary.shards[0]).parent / "stats.json", stats)
    summary.stats = stats
    return summary
