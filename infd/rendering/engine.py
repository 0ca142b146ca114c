"""Tile scheduling for any-resolution rendering: plan the tiles, pick their size, render them in turn.

A render is a window ``region`` (default: all of it) of a virtual ``H x W`` image. The window is cut
into tiles (``renderers.coords.iter_tiles``, row-major); each tile goes through
``magnify.render_window``: ``renderers.region.render_region`` pads it by ``renderer.radius`` (mirrored
queries past the image border), renders and crops, so the tiles join into exactly the full render;
past the renderer's ``max_magnification`` the tile is resampled bicubically from the native-size
render of the pixels it needs. The cost is the window's, whatever ``H x W`` is: a 1024x1024 window of
a 65536x65536 image costs at most a 1024x1024 render.

Tiles are batched over samples (``phi`` is ``(B, C, h, w)``; every tile is rendered for all ``B`` in
one renderer call), and the tile side, unless given, is the largest of ``TILE_LADDER`` whose padded
query grid fits the memory budget (free GPU memory, or available RAM on CPU).

What renders the tiles is chosen once per render, from the renderer and the compute dtype only
(``inference_renderer``): a ``CLIF`` in fp32 goes through its inference path ``FastCLIF``; autocast
and every other renderer use the module itself. ``prepare_renderer`` does the same for a caller that
owns the model and renders many times (device, eval mode, Winograd weights computed once).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from infd.renderers.clif import CLIF
from infd.renderers.coords import Region, check_size, iter_tiles
from infd.renderers.fast import FastCLIF
from .magnify import render_window

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TILE_LADDER = (4096, 2048, 1024, 512, 256, 128, 64, 32, 16)  # tile_px candidates, largest first
CPU_BUDGET_CAP = 1 << 30  # bigger tiles do not make a CPU faster, only hungrier

RenderedTile = tuple[Region, torch.Tensor]  # (tile within the window, pixels (B, 3, h, w) in [-1, 1])
Renderer = nn.Module | FastCLIF  # what ``render_region`` calls: ``(phi, coord, cell) -> rgb``, with ``.radius``


def window_of(size: tuple[int, int], region: Region | None = None) -> Region:
    """The rendered window: ``region`` checked against the ``H x W`` image, or the whole image."""
    H, W = check_size(size)
    return Region(0, 0, H, W) if region is None else region.check_inside((H, W))


def plan_tiles(size: tuple[int, int], region: Region | None, tile: int | tuple[int, int]) -> list[Region]:
    """Row-major tiles (in virtual-image pixels) of at most ``tile`` a side covering the window once."""
    window = window_of(size, region)
    return [Region(t.top + window.top, t.left + window.left, t.height, t.width)
            for t in iter_tiles((window.height, window.width), tile)]


def bytes_per_pixel(renderer: Renderer) -> int:
    """A conservative estimate of the renderer's working memory per query pixel (fp32, one sample).

    Counts the first layer's input and four maps of the widest layer (activation, residual, two
    temporaries), doubled for allocator slack; layers are the renderer's convs and linears.
    """
    module = renderer.clif if isinstance(renderer, FastCLIF) else renderer
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        return 4 * 1024
    widths = [(m.in_channels, m.out_channels) if isinstance(m, nn.Conv2d) else (m.in_features, m.out_features)
              for m in layers]
    first_in, widest = widths[0][0], max(out for _, out in widths)
    return 2 * 4 * (first_in + 4 * widest + 8)


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device``: ``cudaMemGetInfo`` on CUDA, available RAM otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


def choose_tile(renderer: Renderer, device: torch.device, batch: int = 1, budget: int | None = None) -> int:
    """Largest ``tile_px`` of ``TILE_LADDER`` whose padded ``(tile + 2 radius)^2`` grid fits the budget.

    ``budget`` defaults to half the free GPU memory, or a quarter of the available RAM (at most
    ``CPU_BUDGET_CAP``) on CPU. The ladder is coarse on purpose: small changes in free memory do not
    change the tiling, so repeated renders (and the ranks of a multi-process render) agree.
    """
    device = torch.device(device)
    if budget is None:
        free = free_memory(device)
        budget = free // 2 if device.type == "cuda" else min(free // 4, CPU_BUDGET_CAP)
    per_pixel = bytes_per_pixel(renderer) * max(batch, 1)
    radius = int(getattr(renderer, "radius", 0))
    for tile in TILE_LADDER:
        if (tile + 2 * radius) ** 2 * per_pixel <= budget:
            return tile
    return TILE_LADDER[-1]


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device`` (a no-op context for fp32)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def inference_renderer(renderer: Renderer, dtype: torch.dtype = torch.float32,
                       workers: int | None = None) -> Renderer:
    """What renders ``renderer``'s tiles at compute ``dtype``; ``renderer`` itself is left as it is.

    A ``CLIF`` in fp32 becomes ``FastCLIF(renderer, workers)`` (same function, less work; ``workers``
    default: torch's thread count). Under bf16/fp16 autocast, for other renderers (``ReferenceCLIF``
    and other subclasses change the math) and for a ``FastCLIF`` already made, the renderer is returned.
    """
    if type(renderer) is CLIF and dtype == torch.float32:
        return FastCLIF(renderer, workers)
    return renderer


def prepare_renderer(renderer: Renderer, device: torch.device, dtype: torch.dtype = torch.float32,
                     workers: int | None = None) -> Renderer:
    """Ready a renderer module for rendering on ``device`` and return what to render with.

    The module moves to ``device`` in eval mode (in place; channels_last weights on CUDA); the result
    is ``inference_renderer(module, dtype, workers)``, to be reused for every render of that module
    (re-prepare after changing its weights). A ``FastCLIF`` is returned as it is.
    """
    if isinstance(renderer, FastCLIF):
        return renderer
    renderer = renderer.to(device).eval()
    if torch.device(device).type == "cuda":
        renderer = renderer.to(memory_format=torch.channels_last)
    return inference_renderer(renderer, dtype, workers)


def iter_render(renderer: Renderer, phi: torch.Tensor, size: tuple[int, int], region: Region | None = None,
                *, tile: int | None = None, dtype: torch.dtype = torch.float32,
                tiles: Iterable[Region] | None = None,
                on_tile: Callable[[Region], None] | None = None) -> Iterator[RenderedTile]:
    """Render the window tile by tile, yielding ``(tile relative to the window, pixels (B, 3, h, w))``.

    Args:
        renderer: a local renderer (``.radius``) on ``phi``'s device, rendered through
            ``inference_renderer`` (so a CLIF takes its inference path), or what ``prepare_renderer`` returned.
        phi: field ``(B, C, h, w)``.
        size: the virtual image ``(H, W)``; ``region``: the window of it to render (default all).
        tile: tile side in output pixels (default: ``choose_tile``); ignored when ``tiles`` is given.
        dtype: fp32, or bf16/fp16 for autocast. Pixels come back as float32 on ``phi``'s device.
        tiles: render only these tiles (virtual-image pixels, e.g. one rank's share of a plan).
        on_tile: called after each tile (progress).
    """
    window = window_of(size, region)
    if tiles is None:
        tile = tile or choose_tile(renderer, phi.device, phi.shape[0])
        tiles = plan_tiles(size, window, tile)
    renderer = inference_renderer(renderer, dtype)
    with torch.inference_mode(), autocast(phi.device, dtype):
        for t in tiles:
            pixels = render_window(renderer, phi, size, t).float()
            if on_tile is not None:
                on_tile(t)
            yield t.relative_to(window), pixels


def render(renderer: Renderer, phi: torch.Tensor, size: tuple[int, int], region: Region | None = None,
           *, sink=None, tile: int | None = None, dtype: torch.dtype = torch.float32,
           on_tile: Callable[[Region], None] | None = None):
    """Render the window of the virtual ``size`` image into ``sink`` (default: an in-memory tensor).

    Returns what the sink returns: a ``(B, 3, h, w)`` CPU tensor for ``TensorSink``, file paths for
    file sinks. The sink checks first that it can hold the window (``SinkError`` otherwise).
    """
    from .sinks import TensorSink

    sink = TensorSink() if sink is None else sink
    window = window_of(size, region)
    shape = (window.height, window.width)
    sink.check(shape, phi.shape[0])
    return sink.consume(iter_render(renderer, phi, size, window, tile=tile, dtype=dtype, on_tile=on_tile),
                        shape, phi.shape[0])


def render_latent(model: nn.Module, z: torch.Tensor, size: tuple[int, int], region: Region | None = None,
                  **kwargs):
    """Decode ``z (B, z_channels, h, w)`` to ``phi`` once with ``model.decode``, then ``render`` it."""
    with torch.inference_mode():
        phi = model.decode(z)
    return render(model.renderer, phi, size, region, **kwargs)
