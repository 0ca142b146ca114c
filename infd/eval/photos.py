"""Real photos for evaluation: read from shards, made square, resized to any size or cropped.

Every photo becomes its centred square (``center_crop``), resized with an antialiased Lanczos filter.
Evaluation decodes exactly (``fast_decode=False``: no reduced JPEG decode), so the ground truth does
not depend on the size it is made at beyond the resize itself. ``eval_data_config`` is the one place
these settings are made; every evaluation (``tools/eval.py``, the training loop's reconstruction
grids) reads photos through it. Square images are those of ``data.sample_whole`` (``photo_square``
equals its ``gt``); crops are computed alone (``photo_crop``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from PIL import Image

from infd.data import DataConfig, DecodeConfig, PatchConfig, expand_urls
from infd.data.decode import IMAGE_EXTENSIONS, DecodeError, finish_decode, open_image
from infd.data.patches import decode_square, sample_whole
from infd.data.resize import PilBox, resize_pil, resize_region
from infd.data.shards import read_shard
from infd.renderers.coords import Region

log = logging.getLogger("infd.eval")


def eval_data_config(urls: str | list[str], encoder_size: int, decode: DecodeConfig | None = None) -> DataConfig:
    """The ``DataConfig`` of every evaluation: held-out photos ``urls`` read once in order, whole, for an
    encoder input of ``encoder_size``, decoded exactly (``fast_decode=False``). ``decode``: the decoding
    limits (default ``DecodeConfig()``)."""
    patches = PatchConfig(encoder_size=encoder_size, patch_size=1, max_size=None, square="center_crop",
                          fast_decode=False, kernel="lanczos")
    return DataConfig(urls=urls, mode="whole", resampled=False, shard_shuffle=False, shuffle_buffer=0,
                      patches=patches, decode=decode or DecodeConfig())


def photo_samples(data_config, count: int | None = None):
    """``(sample, image bytes)`` of the first ``count`` photos (all when ``None``) of ``data_config.urls``, in
    shard order; samples without an image file are passed over. A photo that does not decode, and the
    rest of a shard that cannot be read (truncated, missing), are skipped with a logged warning, as the
    training loader skips them."""
    seen, skipped = 0, 0
    for url in expand_urls(data_config.urls):
        try:
            def skip(name, reason, url=url):
                log.warning("skipped %s in %s: %s", name, url, reason)

            for sample in read_shard(url, data_config.decode.max_file_bytes, on_skip=skip):
                data = next((v for k, v in sample.items() if k.lower() in IMAGE_EXTENSIONS), None)
                if data is None:
                    continue
                try:
                    finish_decode(open_image(data, data_config.decode.max_pixels), data_config.decode.background)
                except DecodeError as err:
                    skipped += 1
                    log.warning("skipped photo %s in %s: %s (%d skipped)", sample["__key__"], url, err, skipped)
                    continue
                yield sample, data
                seen += 1
                if seen == count:
                    return
        except Exception as err:  # noqa: BLE001 - a truncated or missing shard: keep its complete photos
            skipped += 1
            log.warning("skipped the rest of %s: %s: %s (%d skipped)", url, type(err).__name__, err, skipped)


def first_images(data_config, count: int | None) -> list[bytes]:
    """The encoded bytes of the first ``count`` photos (all when ``None``): ``photo_samples``'s images."""
    return [data for _, data in photo_samples(data_config, count)]


def photo_labels(data_config, count: int | None = None) -> list[int | None]:
    """The JSON ``label`` of the same photos as ``first_images`` (``None`` where a photo has none)."""
    out = []
    for sample, _ in photo_samples(data_config, count):
        meta = next((v for k, v in sample.items() if k.lower() == "json"), None)
        label = json.loads(meta).get("label") if meta is not None else None
        out.append(None if label is None else int(label))
    return out


def missing_local_shards(urls: str | list[str]) -> list[str]:
    """The shard URLs that are plain local paths and do not exist (pipes and remote URLs are not checked)."""
    local = [u for u in expand_urls(urls) if "://" not in u and not u.startswith("pipe:")]
    return [u for u in local if not Path(u.removeprefix("file:")).is_file()]


def load_photos(data_config, count: int | None = None) -> list[bytes]:
    """Encoded bytes of the first ``count`` photos (all when ``None``); ``ValueError`` if there are none."""
    photos = first_images(data_config, count)
    if not photos:
        raise ValueError(f"no images found in {data_config.urls}")
    return photos


def load_whole_images(data_config, image_bytes: list[bytes], size: int) -> list[dict]:
    """``data.sample_whole`` of each photo with ground truth at ``size``: ``inp (3, S, S)``, ``gt (3, size, size)``."""
    patches = dataclasses.replace(data_config.patches, whole_size=size)
    return [sample_whole(b, patches, data_config.decode) for b in image_bytes]


def decode_photo(data: bytes, data_config) -> tuple[Image.Image, PilBox]:
    """Decode a photo once: ``(image, box)``, its centred square as a box of the decoded image."""
    img = open_image(data, data_config.decode.max_pixels)
    return decode_square(img, data_config.patches, data_config.decode, None)


def photo_square(photo: bytes | tuple[Image.Image, PilBox], size: int, data_config) -> torch.Tensor:
    """The photo's (bytes, or ``decode_photo``'s result) centred square resized to ``size x size`` by
    Pillow's Lanczos, as ``data.sample_whole`` makes its ground truth: ``(3, size, size)`` in [-1, 1]."""
    img, box = decode_photo(photo, data_config) if isinstance(photo, bytes) else photo
    return resize_pil(img, size, box, data_config.patches.kernel) / 127.5 - 1.0


def photo_crop(photo: bytes | tuple[Image.Image, PilBox], size: int, region: Region, data_config) -> torch.Tensor:
    """Pixels ``region`` of the photo's square resized to ``size x size``: ``(3, h, w)`` in [-1, 1].

    Only the crop is computed (``data.resize.resize_region``: the exact Lanczos resize of the square,
    within Pillow's 8-bit rounding of ``photo_square``).
    """
    img, box = decode_photo(photo, data_config) if isinstance(photo, bytes) else photo
    crop = resize_region(img, (size, size), region.check_inside((size, size)), data_config.patches.kernel, box)
    return crop / 127.5 - 1.0
