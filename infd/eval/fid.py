"""FID of generated samples against real photos, and patch-FID of crops of large renders.

Feature sets (each a ``FeatureStats`` of one feature extractor, Inception for the real metric):

- ``full``: whole images at ``full_size`` (samples rendered at that size; photos' squares resized to it).
- ``patch@R`` for each render size ``R`` (e.g. 1024 and 2048, as in the paper): ``crops`` ``P x P`` crops
  per image of the image at ``R x R`` (default 1). A few hundred images give a few hundred crops, fewer
  than Inception's 2048 dimensions: their covariance is rank-deficient and the FID biased upwards, the
  more the fewer the crops; several crops per image give the paper's protocol (many random crops) from a
  small set. Only the crop is rendered (``infd.rendering.engine.render`` of a
  region equals the same pixels of the full render) or resized (``photos.photo_crop``), so the cost is
  that of the crop, not of the ``R x R`` image.

Crops are seeded: image ``i`` (a photo's index, or a sample's seed) at size ``R`` takes the crops drawn
by ``random.Random("patch-fid/{seed}/{R}/{i}")`` (crop 0, the one crop of ``crops=1``) and
``".../{i}/{k}"`` (crop ``k >= 1``), so a sample's crops do not depend on its batch, a run reproduces
exactly and more crops keep the first ones. The FID of a feature set is ``frechet.fid_of_stats`` of its two statistics.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from tqdm import tqdm

from infd.renderers.coords import Region

from infd.data.views import sample_views, view_rng

from .frechet import FeatureStats, Method, fid_of_stats
from .photos import decode_photo, photo_crop, photo_square

Extractor = Callable[[torch.Tensor], torch.Tensor]  # images (B, 3, H, W) in [-1, 1] -> features (B, D)
FULL = "full"


@dataclass(frozen=True)
class FIDSettings:
    """full_size: side of whole images; sizes: render sizes R of the patch crops; patch: crop side P."""

    full_size: int = 256
    sizes: tuple[int, ...] = (1024, 2048)
    patch: int = 256
    seed: int = 0  # of the crop positions
    crops: int = 1  # crops per image at each render size

    def __post_init__(self):
        if self.full_size < 1 or self.patch < 1 or not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"FID sizes must be positive, got full {self.full_size}, sizes {list(self.sizes)}, "
                             f"patch {self.patch}")
        if self.patch > min(self.sizes):
            raise ValueError(f"the patch ({self.patch} px) must fit in the smallest render size ({min(self.sizes)})")
        if self.crops < 1:
            raise ValueError(f"--patch-crops must be >= 1, got {self.crops}")

    @property
    def keys(self) -> list[str]:
        return [FULL, *(patch_key(R) for R in self.sizes)]


def patch_key(size: int) -> str:
    return f"patch@{size}"


def patch_region(size: int, patch: int, index: int, seed: int = 0, crop: int = 0) -> Region:
    """The seeded ``patch x patch`` crop number ``crop`` of image ``index`` rendered at ``size x size``."""
    if not 0 < patch <= size:
        raise ValueError(f"a {patch} px patch does not fit in a {size} px image")
    rng = random.Random(f"patch-fid/{seed}/{size}/{index}" + (f"/{crop}" if crop else ""))
    return Region(rng.randint(0, size - patch), rng.randint(0, size - patch), patch, patch)


def image_regions(settings: FIDSettings, size: int, indices: Iterable[int]) -> list[Region]:
    """The ``settings.crops`` seeded regions of each image of ``indices`` at ``size``, image by image."""
    return [patch_region(size, settings.patch, i, settings.seed, k) for i in indices for k in range(settings.crops)]


def collect_features(batches: Iterable[dict[str, torch.Tensor]], extractor: Extractor,
                     keep: bool = False) -> dict[str, FeatureStats]:
    """Feature statistics per key of ``batches`` (each ``{key: images (B, 3, H, W) in [-1, 1]}``); ``keep``
    also keeps the vectors (for KID and the memorisation check)."""
    stats: dict[str, FeatureStats] = {}
    for batch in batches:
        for key, images in batch.items():
            stats.setdefault(key, FeatureStats(keep)).add(extractor(images))
    return stats


def real_batches(photos: list[bytes], settings: FIDSettings, data_config, batch: int = 8,
                 progress: bool = False, views: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """``{key: images}`` of the real photos: whole squares at ``full_size`` and the seeded crops.

    ``views = K``: each photo gives K random square views instead (``data.views``: crops at random
    scales, seeded by the photo's index), resized to ``full_size``, and the seeded crops of each view per
    render size (image index ``i K + v``): the "real views" of a small photo set, as the latent cache sees
    them. A photo's crops at ``R`` are ``photo_crop``s of one ``R x R`` resize of it."""
    for start in tqdm(range(0, len(photos), batch), desc="FID real photos", unit="batch", disable=not progress):
        chunk = [(i, decode_photo(p, data_config)) for i, p in enumerate(photos[start:start + batch], start)]
        if not views:
            out = {FULL: torch.stack([photo_square(p, settings.full_size, data_config) for _, p in chunk])}
            indexed = chunk
        else:
            out = {FULL: torch.cat([torch.stack([v["inp"] for v in sample_views(
                photos[i], views, settings.full_size, view_rng(settings.seed, f"real/{i}"),
                decode=data_config.decode, kernel=data_config.patches.kernel)]) for i, _ in chunk])}
            indexed = [(i * views + v, p) for i, p in chunk for v in range(views)]
        for R in settings.sizes:
            out[patch_key(R)] = torch.stack([photo_crop(p, R, region, data_config) for i, p in indexed
                                             for region in image_regions(settings, R, [i])])
        yield out


@torch.no_grad()
def reconstructed_batches(autoencoder, batches: Iterable[dict[str, torch.Tensor]], device="cpu"
                          ) -> Iterator[dict[str, torch.Tensor]]:
    """``{FULL: the autoencoder's reconstructions}`` of the whole images of ``batches`` (``real_batches``):
    resized to the encoder input if they are another size (bicubic, antialiased), encoded, rendered at their
    own size, clamped."""
    from ..rendering.engine import inference_renderer, render

    renderer = inference_renderer(autoencoder.renderer)
    S = autoencoder.config.input_size
    for batch in batches:
        x = batch[FULL].to(device)
        inp = x if tuple(x.shape[-2:]) == (S, S) else torch.nn.functional.interpolate(
            x, size=(S, S), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
        yield {FULL: render(renderer, autoencoder.decode(autoencoder.encode(inp)), tuple(x.shape[-2:])).clamp(-1, 1)}


@torch.no_grad()
def reconstructed_crops(autoencoder, photos: list[bytes], settings: FIDSettings, data_config, views: int = 0,
                        device="cpu") -> Iterator[dict[str, torch.Tensor]]:
    """``{patch@R: images}`` of each photo's reconstruction: its square at the encoder input, encoded and
    rendered only at the seeded crops of ``real_batches`` (the same regions of the same ``views`` per photo),
    so they pair with the real crops the way a sample's crops do (a latent at the input size, rendered at R)."""
    from ..rendering.engine import inference_renderer

    renderer = inference_renderer(autoencoder.renderer)
    S = autoencoder.config.input_size
    for i, photo in enumerate(photos):
        x = photo_square(photo, S, data_config).unsqueeze(0).to(device)
        phi = autoencoder.decode(autoencoder.encode(x))
        indices = [i * views + v for v in range(views)] if views else [i]
        yield {patch_key(R): render_crops(renderer, phi, R, image_regions(settings, R, indices))
               for R in settings.sizes}


@torch.no_grad()
def render_crops(renderer, phi: torch.Tensor, size: int, regions: list[Region]) -> torch.Tensor:
    """``regions`` of the virtual ``size x size`` images of ``phi (B, C, h, w)``, the same number per image
    (image by image, as ``image_regions`` lists them): ``(len(regions), 3, P, P)``."""
    from ..rendering.engine import render

    if not regions or len(regions) % phi.shape[0]:
        raise ValueError(f"{len(regions)} regions for {phi.shape[0]} fields: give the same number per field")
    per = len(regions) // phi.shape[0]
    return torch.cat([render(renderer, phi[j // per:j // per + 1], (size, size), region)
                      for j, region in enumerate(regions)]).clamp(-1, 1)


@torch.no_grad()
def sample_batches(model, seeds: list[int], settings: FIDSettings, options, batch: int = 8, device="cpu",
                   progress: bool = False, on_full: Callable | None = None,
                   labels: list[int] | None = None,
                   timings: list[float] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """``{key: images}`` of samples of ``model`` (anything ``rendering.sampling.sample_latents`` takes),
    in batches of ``batch`` seeds in the order of ``seeds``.

    ``options`` is a ``SamplingSpec``; sample ``seed`` gets the latent of that seed and the crops of
    index ``seed`` (``settings.crops`` of them at each size, sample by sample). ``labels``: a class label per seed (instead of ``options.class_label``; one batch
    may hold several, and a seed's sample does not depend on its batch). ``on_full(phi, images)`` sees
    each batch's field and whole images (e.g. to measure scale consistency without sampling twice).
    ``timings`` gets the seconds each batch's sampler took (the latents, not the decoder and the renders).
    """
    import time

    from ..rendering.engine import inference_renderer, render
    from ..rendering.sampling import sample_latents

    if labels is not None and len(labels) != len(seeds):
        raise ValueError(f"{len(labels)} labels for {len(seeds)} seeds")
    model = model.to(device).eval()
    renderer = inference_renderer(model.renderer)  # prepared once for every batch and crop
    starts = range(0, len(seeds), batch)
    for i in tqdm(starts, desc="FID samples", unit="batch", disable=not progress):
        chunk = seeds[i:i + batch]
        start = time.perf_counter()
        z = sample_latents(model, chunk, options, labels=None if labels is None else labels[i:i + batch]).to(device)
        if timings is not None:
            timings.append(time.perf_counter() - start)
        phi = model.decode(z)
        full = render(renderer, phi, (settings.full_size,) * 2).clamp(-1, 1)
        if on_full is not None:
            on_full(phi, full)
        out = {FULL: full}
        for R in settings.sizes:
            out[patch_key(R)] = render_crops(renderer, phi, R, image_regions(settings, R, chunk))
        yield out


def fid_table(real: dict[str, FeatureStats], fake: dict[str, FeatureStats],
              method: Method = "auto") -> dict[str, float]:
    """FID per feature set present in both (``full`` and ``patch@R``); ``method``: the matrix square root."""
    return {key: fid_of_stats(fake[key], real[key], method) for key in fake if key in real}
