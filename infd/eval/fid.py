"""FID of generated samples against real photos, and patch-FID of crops of large renders.

Feature sets (each a ``FeatureStats`` of one feature extractor, Inception for the real metric):

- ``full``: whole images at ``full_size`` (samples rendered at that size; photos' squares resized to it).
- ``patch@R`` for each render size ``R`` (e.g. 1024 and 2048, as in the paper): one ``P x P`` crop per
  image of the image at ``R x R``. Only the crop is rendered (``infd.rendering.engine.render`` of a
  region equals the same pixels of the full render) or resized (``photos.photo_crop``), so the cost is
  that of the crop, not of the ``R x R`` image.

Crops are seeded: image ``i`` (a photo's index, or a sample's seed) at size ``R`` takes the crop drawn
by ``random.Random("patch-fid/{seed}/{R}/{i}")``, so a sample's crop does not depend on its batch and
a run reproduces exactly. The FID of a feature set is ``frechet.fid_of_stats`` of its two statistics.
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

    def __post_init__(self):
        if self.full_size < 1 or self.patch < 1 or not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"FID sizes must be positive, got full {self.full_size}, sizes {list(self.sizes)}, "
                             f"patch {self.patch}")
        if self.patch > min(self.sizes):
            raise ValueError(f"the patch ({self.patch} px) must fit in the smallest render size ({min(self.sizes)})")

    @property
    def keys(self) -> list[str]:
        return [FULL, *(patch_key(R) for R in self.sizes)]


def patch_key(size: int) -> str:
    return f"patch@{size}"


def patch_region(size: int, patch: int, index: int, seed: int = 0) -> Region:
    """The seeded ``patch x patch`` crop of image ``index`` rendered at ``size x size``."""
    if not 0 < patch <= size:
        raise ValueError(f"a {patch} px patch does not fit in a {size} px image")
    rng = random.Random(f"patch-fid/{seed}/{size}/{index}")
    return Region(rng.randint(0, size - patch), rng.randint(0, size - patch), patch, patch)


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
    scales, seeded by the photo's index), resized to ``full_size``, and K seeded crops per render size
    (image index ``i K + v``): the "real views" of a small photo set, as the latent cache sees them."""
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
            out[patch_key(R)] = torch.stack([photo_crop(p, R, patch_region(R, settings.patch, i, settings.seed),
                                                        data_config) for i, p in indexed])
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
    rendered only at the seeded crops of ``real_batches`` (the same regions, ``views`` per photo), so they
    pair with the real crops the way a sample's crops do (a latent at the input size, rendered at R)."""
    from ..rendering.engine import inference_renderer

    renderer = inference_renderer(autoencoder.renderer)
    S = autoencoder.config.input_size
    per_photo = max(views, 1)
    for i, photo in enumerate(photos):
        x = photo_square(photo, S, data_config).unsqueeze(0).to(device)
        phi = autoencoder.decode(autoencoder.encode(x)).expand(per_photo, -1, -1, -1)
        indices = [i * views + v for v in range(views)] if views else [i]
        yield {patch_key(R): render_crops(renderer, phi, R, [patch_region(R, settings.patch, k, settings.seed)
                                                            for k in indices]) for R in settings.sizes}


@torch.no_grad()
def render_crops(renderer, phi: torch.Tensor, size: int, regions: list[Region]) -> torch.Tensor:
    """One region per sample of the virtual ``size x size`` images of ``phi (B, C, h, w)``: ``(B, 3, P, P)``."""
    from ..rendering.engine import render

    return torch.cat([render(renderer, phi[i:i + 1], (size, size), region)
                      for i, region in enumerate(regions)]).clamp(-1, 1)


@torch.no_grad()
def sample_batches(model, seeds: list[int], settings: FIDSettings, options, batch: int = 8, device="cpu",
                   progress: bool = False, on_full: Callable | None = None,
                   labels: list[int] | None = None,
                   timings: list[float] | None = None) -> Iterator[dict[str, torch.Tensor]]:
    """``{key: images}`` of samples of ``model`` (anything ``rendering.sampling.sample_latents`` takes),
    in batches of ``batch`` seeds in the order of ``seeds``.

    ``options`` is a ``SamplingSpec``; sample ``seed`` gets the latent of that seed and the crops of
    index ``seed``. ``labels``: a class label per seed (instead of ``options.class_label``; one batch
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
            regions = [patch_region(R, settings.patch, seed, settings.seed) for seed in chunk]
            out[patch_key(R)] = render_crops(renderer, phi, R, regions)
        yield out


def fid_table(real: dict[str, FeatureStats], fake: dict[str, FeatureStats],
              method: Method = "auto") -> dict[str, float]:
    """FID per feature set present in both (``full`` and ``patch@R``); ``method``: the matrix square root."""
    return {key: fid_of_stats(fake[key], real[key], method) for key in fake if key in real}
