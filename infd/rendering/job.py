"""Run a ``RenderRequest``: sample latents, decode each batch's field once, render its tiles to files.

The work is a list of units ``(batch, tile)`` that every rank builds identically; each rank takes
its share (``distributed.assign``). A one-process run is the same code with a world of one. See
``distributed`` for how a batch shared by several ranks is assembled into one file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from infd import devices
from infd.diffusion.windows import LabelBox, WindowSpec
from infd.models.tiled_decode import decode_canvas
from infd.renderers.coords import Region

from .distributed import DistContext, TileStore, assign, owner_of, store_path
from .engine import DTYPES, choose_tile, iter_render, plan_tiles, prepare_renderer, render
from .request import GRID_GAP, RenderRequest, RequestError
from .canvas import canvas_latent_size
from .sampling import has_prior, latent_shape, sample_latents
from .sinks import FileSink, quantize

BarFactory = Callable[[str, int], object]  # (description, total) -> object with update(n) and close()
# "sampling" counts sampler steps (one per batch for a model without a prior), "windows" the backbone
# windows of a --canvas grow prior (steps x windows), "tiles" rendered tiles.


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def resolve_device(name: str, dist: DistContext | None = None) -> torch.device:
    """The ``torch.device`` of a ``--device`` value; plain ``cuda`` means this rank's local GPU."""
    dist = dist or DistContext()
    try:
        return devices.resolve_device(name, default_index=dist.local_rank)
    except devices.DeviceError as err:
        raise RequestError(str(err)) from None


def run_request(request: RenderRequest, model: nn.Module, dist: DistContext | None = None,
                make_bar: BarFactory | None = None) -> list[Path]:
    """Render every output of ``request`` this rank is responsible for; returns the files it wrote."""
    dist = dist or DistContext()
    make_bar = make_bar or (lambda desc, total: _NoBar())
    device = resolve_device(request.device, dist)
    model = model.to(device).eval()
    if request.max_magnification is not None:
        model.renderer.max_magnification = request.max_magnification
    renderer = prepare_renderer(model.renderer, device, DTYPES[request.dtype])  # once for every batch and tile
    if request.also_sizes:
        return _run_grids(request, model, renderer, device, dist, make_bar)
    return _run_files(request, model, renderer, device, dist, make_bar)


def sampling_units(model: nn.Module, request: RenderRequest) -> int:
    """Units of the "sampling" bar per batch: the sampler's steps (with ``--canvas grow``, the backbone
    windows of all steps), or 1 without a prior."""
    if not has_prior(model):
        return 1
    if request.canvas.joint:
        return model.joint_windows_total(canvas_shape(model, request), request.sampling, window_spec(request),
                                         label_boxes(model, request))
    return request.sampling.steps


def check_canvas(model: nn.Module, request: RenderRequest) -> None:
    """``RequestError`` (one line) when the ``--canvas`` options do not fit ``model``."""
    c = request.canvas
    if not c.joint:
        return
    if not has_prior(model):
        if c.labels:
            raise RequestError("--labels needs a diffusion prior (this model has none)")
        return
    if c.window_mode == "shifted" and model.window_multiple() is None:
        raise RequestError(f"--window-mode shifted needs a UNet prior; this model's "
                           f"{type(model.backbone).__name__} takes only its trained size: use --window-mode overlap")
    labels = [label for _, label in c.labels if label is not None]
    if labels and model.num_classes is None:
        raise RequestError("--labels: this model is unconditional and takes no class label (use label: null)")
    if labels and max(labels) >= model.num_classes:
        raise RequestError(f"--labels: class {max(labels)} is not a label of this model (0..{model.num_classes - 1})")


def canvas_shape(model: nn.Module, request: RenderRequest) -> tuple[int, int] | None:
    """``(h, w)`` of the latents to sample: ``None`` (the trained size) unless ``--canvas grow``."""
    if not request.canvas.joint:
        return None
    multiple = 1
    if has_prior(model) and request.canvas.window_mode == "shifted":
        multiple = model.window_multiple() or 1
    return canvas_latent_size(request.size, latent_shape(model)[1], request.canvas.scale, multiple)


def window_spec(request: RenderRequest) -> WindowSpec:
    c = request.canvas
    return WindowSpec(stride=c.window_stride, batch=c.window_batch, mode=c.window_mode)


def label_boxes(model: nn.Module, request: RenderRequest) -> tuple[LabelBox, ...]:
    """``--labels`` boxes in latent positions of the canvas (each at least one position)."""
    shape = canvas_shape(model, request)
    boxes = []
    for box, label in request.canvas.labels:
        top, left, bottom, right = box.pixels(shape)
        boxes.append(LabelBox(top, left, max(bottom, top + 1), max(right, left + 1), label))
    return tuple(boxes)


def _sample(model: nn.Module, seeds: list[int], request: RenderRequest, bar) -> torch.Tensor:
    """``sample_latents`` with the bar advanced per sampler step (per window with ``--canvas grow``; once,
    without a prior)."""
    if not has_prior(model):
        z = sample_latents(model, seeds, request.sampling, canvas=canvas_shape(model, request))
        bar.update(1)
        return z
    if request.canvas.joint:
        return sample_latents(model, seeds, request.sampling, canvas=canvas_shape(model, request),
                              windows=window_spec(request), boxes=label_boxes(model, request),
                              on_windows=bar.update)
    return sample_latents(model, seeds, request.sampling, callback=lambda *_: bar.update(1))


def _decode(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Field ``phi (B, C, h, w)`` of latents ``z (B, z_channels, h', w')`` on the model's device (no copy);
    a canvas larger than the trained latent is decoded in overlapping windows (``decode_canvas``)."""
    with torch.inference_mode():
        return decode_canvas(model.decode, z, latent_shape(model)[1])


def _run_files(request, model, renderer, device, dist, make_bar) -> list[Path]:
    batch = request.render_batch
    tile = request.tile or choose_tile(model.renderer, device, batch)
    tile = dist.broadcast_int(tile, 0)  # a tiling every rank shares, so units mean the same everywhere
    region = request.region
    tiles = plan_tiles(request.size, region, tile)
    T, world = len(tiles), dist.world_size
    batches = [list(range(i, min(i + batch, len(request.seeds)))) for i in range(0, len(request.seeds), batch)]
    mine = assign(len(batches) * T, dist.rank, world)
    sampled = {b for b in range(len(batches)) if owner_of(b * T, world) == dist.rank}  # owners sample
    sampling_bar = make_bar("windows" if request.canvas.joint and has_prior(model) else "sampling",
                            len(sampled) * sampling_units(model, request))
    tile_bar = make_bar("tiles", len(mine))
    written: list[Path] = []
    try:
        for b, members in enumerate(batches):
            my_tiles = [tiles[t] for t in range(T) if owner_of(b * T + t, world) == dist.rank]
            shared = T > 1 and world > 1  # round-robin: consecutive tiles go to different ranks
            if not (my_tiles or shared):
                continue
            paths = [request.outputs[i] for i in members]
            seeds = [request.seeds[i] for i in members]
            owner = owner_of(b * T, world)
            job = _BatchJob(request, model, renderer, tiles=my_tiles, paths=paths, region=region)
            if not shared:
                job.render_to_files(_sample(model, seeds, request, sampling_bar), tile_bar)
                written += paths
            else:
                written += job.render_shared(seeds, dist, owner, sampling_bar, tile_bar)
    finally:
        sampling_bar.close()
        tile_bar.close()
    return written


class _BatchJob:
    """One batch of samples: its latents, its field, this rank's tiles of it, and its output files."""

    def __init__(self, request: RenderRequest, model, renderer, tiles: list[Region], paths: list[Path],
                 region: Region | None):
        self.request, self.model, self.renderer = request, model, renderer
        self.tiles, self.paths, self.region = tiles, paths, region
        self.sink = FileSink(paths, bits=request.bits, tiff_compression=request.compression)

    def _render(self, phi, tile_bar):
        return iter_render(self.renderer, phi, self.request.size, self.region, tiles=self.tiles,
                           dtype=DTYPES[self.request.dtype], on_tile=lambda _: tile_bar.update(1))

    def render_to_files(self, z, tile_bar) -> None:
        phi = _decode(self.model, z)
        self.sink.consume(self._render(phi, tile_bar), self.request.output_size, len(self.paths))

    def render_shared(self, seeds, dist: DistContext, owner: int, sampling_bar, tile_bar) -> list[Path]:
        """Fill the batch's tile stores with this rank's tiles; the owner then writes the files.

        The owner samples and decodes the batch and broadcasts its field ``phi``: every rank renders
        the very same field, however the decoder's rounding varies between devices or thread counts.
        """
        size, bits = self.request.output_size, self.request.bits
        dtype = np.uint8 if bits == 8 else np.uint16
        is_owner = dist.rank == owner
        stores: list[TileStore] = []
        try:
            if is_owner:
                stores = [TileStore(store_path(p), size, dtype, create=True) for p in self.paths]
                phi = _decode(self.model, _sample(self.model, seeds, self.request, sampling_bar))
                shape = torch.tensor(phi.shape)
            else:
                shape = torch.zeros(4, dtype=torch.int64)
            shape = dist.broadcast(shape, owner)
            if not is_owner:
                phi = torch.empty(*shape.tolist(), device=next(self.model.parameters()).device)
            phi = dist.broadcast(phi, owner)  # from here on the stores exist, too
            if self.tiles:
                stores = stores or [TileStore(store_path(p), size, dtype) for p in self.paths]
                for region, pixels in self._render(phi, tile_bar):
                    for store, image in zip(stores, quantize(pixels, bits)):
                        store.write(region, image)
                for store in stores:
                    store.flush()
            dist.barrier()
            if not is_owner:
                return []
            bands = (_stack_bands(parts) for parts in zip(*(s.iter_bands() for s in stores)))
            return self.sink.write_quantized(bands, size, len(self.paths))
        finally:
            for store in stores:
                if is_owner:
                    store.remove()


def _stack_bands(parts):
    """Bands ``(region, (1, rows, W, 3))`` of several stores -> one ``(region, (B, rows, W, 3))``."""
    return parts[0][0], np.concatenate([band for _, band in parts])


def _run_grids(request, model, renderer, device, dist, make_bar) -> list[Path]:
    """``--also-sizes``: each sample rendered at every size, laid side by side in one 8-bit image."""
    sizes = request.grid_sizes
    mine = assign(len(request.seeds), dist.rank, dist.world_size)
    tile = request.tile or choose_tile(model.renderer, device)
    sampling_bar = make_bar("sampling", len(mine) * sampling_units(model, request))
    tile_bar = make_bar("tiles", len(mine) * sum(len(plan_tiles(s, None, tile)) for s in sizes))
    height, width = request.file_size
    written = []
    try:
        for i in mine:
            phi = _decode(model, _sample(model, [request.seeds[i]], request, sampling_bar))
            grid = np.full((1, height, width, 3), 255, np.uint8)
            left = 0
            for h, w in sizes:
                pixels = render(renderer, phi, (h, w), tile=tile, dtype=DTYPES[request.dtype],
                                on_tile=lambda _: tile_bar.update(1))
                grid[0, :h, left:left + w] = quantize(pixels, 8)[0]
                left += w + GRID_GAP
            sink = FileSink(request.outputs[i], bits=8)
            written += sink.write_quantized([(Region(0, 0, height, width), grid)], (height, width), 1)
    finally:
        sampling_bar.close()
        tile_bar.close()
    return written
