"""The data layer: photo folders -> tar shards -> streaming multiscale patch samples.

``shards`` writes webdataset shards (original bytes + JSON metadata); ``decode`` turns bytes into
RGB robustly; ``resize`` is the exact antialiased window resize; ``patches`` is the method's
multiscale patch sampler (and the whole-image sampler for evaluation); ``pipeline`` streams
samples for multi-node, multi-worker training; ``photos`` lists the real photos available
offline from Debian packages; ``latents`` and ``latent_cache`` hold the stage-2 latent cache.

The names below are imported on first use, so ``tools/make_shards.py`` does not load torch.
"""
import importlib

_EXPORTS = {
    "DataConfig": "pipeline", "DataError": "pipeline", "ShardDataset": "pipeline", "collate_samples": "pipeline",
    "expand_urls": "pipeline", "make_dataset": "pipeline", "make_loader": "pipeline",
    "DecodeConfig": "decode", "DecodeError": "decode", "decode_image": "decode",
    "PatchConfig": "patches", "SkipSample": "patches", "sample_patch": "patches", "sample_whole": "patches",
    "resize_region": "resize",
    "ShardError": "shards", "ShardSummary": "shards", "ShardWriter": "shards", "list_images": "shards",
    "write_shards": "shards",
    "LatentCacheError": "latents", "LatentDataConfig": "latents", "LatentStats": "latents", "load_stats": "latents",
    "make_latent_loader": "latents", "cache_latents": "latent_cache",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'infd.data' has no attribute {name!r}")
