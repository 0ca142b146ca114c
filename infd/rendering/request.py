"""A render request from the command line, parsed and checked before any model is loaded (no torch).

``make_request(...)`` turns the strings of ``tools/render.py`` into a ``RenderRequest`` or raises
``RequestError`` with one line: bad sizes, a region outside the image, seeds, a bad sampling spec
(``infd.diffusion.sampling.SamplingSpec``: unknown sampler, steps, scale), an output the format cannot
hold or a path that cannot be written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from infd.cli import UsageError, parse_device, parse_size, parse_sizes, refuse_overwrite
from infd.diffusion.sampling import (CLASS_PER_SEED, DEFAULT_CFG_SCALE, DEFAULT_SAMPLER, DEFAULT_STEPS, SamplingError,
                                     SamplingSpec)
from infd.renderers.windows import Region

from .canvas import CanvasSpec, crop_region
from .formats import (FORMATS, Format, SinkError, check_capacity, check_compression, check_memory,
                      check_writable, format_for_path)

DTYPE_NAMES = ("fp32", "bf16", "fp16")
MAX_SEEDS = 1_000_000
MAX_SEED = 2**63 - 1


class RequestError(UsageError):
    """An invalid render request (one line, shown to the user as is)."""


@dataclass(frozen=True)
class RenderRequest:
    size: tuple[int, int]  # (H, W) of the virtual image
    seeds: list[int]
    outputs: list[Path]  # one file per seed
    format: Format
    bits: int = 8
    region: Region | None = None  # the window of the virtual image to render (default: all of it)
    also_sizes: list[tuple[int, int]] = field(default_factory=list)
    tile: int | None = None
    batch: int = 4
    device: str = "auto"
    dtype: str = "fp32"
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    checkpoint: str | None = None
    max_magnification: float | None = None  # overrides the checkpoint's native magnification limit
    compression: str | None = None  # tifffile's codec of a TIFF output (None: raw)
    canvas: CanvasSpec = field(default_factory=CanvasSpec)  # crop: size and region are already the square's

    @property
    def output_size(self) -> tuple[int, int]:
        """``(h, w)`` of each output file (the region's size when a region is given)."""
        return self.size if self.region is None else (self.region.height, self.region.width)

    @property
    def grid_sizes(self) -> list[tuple[int, int]]:
        """``--also-sizes``: the distinct sizes of each sample's grid, smallest first (else ``[]``)."""
        if not self.also_sizes:
            return []
        return sorted({self.size, *self.also_sizes}, key=lambda s: (s[0] * s[1], s))

    @property
    def file_size(self) -> tuple[int, int]:
        """``(h, w)`` of each written file: the output, or with ``--also-sizes`` the grid of its sizes."""
        return grid_size(self.grid_sizes) if self.also_sizes else self.output_size

    @property
    def render_batch(self) -> int:
        """Samples rendered together: one at a time into a TIFF (its writer pulls one image)."""
        return 1 if self.format.name == "tiff" else min(self.batch, len(self.seeds))


def parse_region(text: str, size: tuple[int, int]) -> Region:
    """``"x,y,w,h"`` (pixels of the virtual image) -> its ``Region``, inside ``size``."""
    parts = text.split(",")
    if len(parts) != 4 or not all(re.fullmatch(r"\s*-?\d+\s*", p) for p in parts):
        raise RequestError(f"--region must be x,y,w,h (four integers), got '{text}'")
    x, y, w, h = (int(p) for p in parts)
    H, W = size
    if w < 1 or h < 1:
        raise RequestError(f"--region width and height must be at least 1, got {w}x{h}")
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise RequestError(f"--region {x},{y},{w},{h} lies outside the {W}x{H} image")
    return Region(top=y, left=x, height=h, width=w)


def parse_seeds(text: str, num: int | None) -> list[int]:
    """``"7"`` (with ``num``: 7, 8, ...), ``"0-7"`` or ``"1,5,9"`` -> the list of seeds."""
    if num is not None and num < 1:
        raise RequestError(f"--num must be at least 1, got {num}")
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise RequestError(f"--seed must be N, A-B or a comma list of them (non-negative), got '{text}'")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if last > MAX_SEED:
            raise RequestError(f"--seed must be at most {MAX_SEED} (a 63-bit generator seed), got {last}")
        if last < first:
            raise RequestError(f"--seed range {first}-{last} is empty")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise RequestError(f"--seed gives more than {MAX_SEEDS} samples")
        seeds.extend(range(first, last + 1))
    if len(seeds) == 1 and num is not None:
        seeds = list(range(seeds[0], seeds[0] + num))
    elif num is not None and num != len(seeds):
        raise RequestError(f"--num {num} does not match the {len(seeds)} seeds given by --seed {text}")
    return seeds


def resolve_outputs(out: str, seeds: list[int]) -> tuple[Format, list[Path]]:
    """One output path per seed: ``out`` itself, ``stem_seedNNNN.ext`` files, or ``seedNNNN.png`` in a folder."""
    path = Path(out)
    is_folder = out.endswith(("/", "\\")) or path.is_dir() or not path.suffix
    if is_folder:
        return FORMATS["png"], [path / f"seed{seed:04d}.png" for seed in seeds]
    fmt = format_for_path(path)
    if len(seeds) == 1:
        return fmt, [path]
    return fmt, [path.with_name(f"{path.stem}_seed{seed:04d}{path.suffix}") for seed in seeds]


def make_request(*, size: str, out: str, seed: str = "0", num: int | None = None, region: str | None = None,
                 also_sizes: str | None = None, tile: int | None = None, batch: int = 4, bits: int = 8,
                 device: str = "auto", dtype: str = "fp32", steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                 cfg_scale: float = DEFAULT_CFG_SCALE, class_label: int | str | None = CLASS_PER_SEED,
                 checkpoint: str | None = None, max_magnification: float | None = None,
                 compression: str | None = None, canvas: str = "stretch", canvas_scale: float = 1.0,
                 window_mode: str = "overlap", window_stride: int | None = None, window_batch: int = 8,
                 labels: str | None = None) -> RenderRequest:
    """Parse and check everything that can be checked without the model; ``RequestError`` otherwise (or its
    base ``UsageError`` from the shared parsers of ``infd.cli``)."""
    hw = parse_size(size)
    box = parse_region(region, hw) if region is not None else None
    extra = parse_sizes(also_sizes, "--also-sizes") if also_sizes else []
    if extra and box is not None:
        raise RequestError("--also-sizes and --region cannot be combined")
    spec = make_canvas(canvas, canvas_scale, window_mode, window_stride, window_batch, labels)
    if spec.mode != "stretch" and extra:
        raise RequestError(f"--also-sizes renders one field at several sizes: it needs --canvas stretch, "
                           f"not {spec.mode}")
    if spec.mode == "crop":  # a square image of the longer side, of which the output is the centred window
        hw, box = crop_region(hw, box)
    seeds = parse_seeds(seed, num)
    if tile is not None and tile < 1:
        raise RequestError(f"--tile must be at least 1 pixel, got {tile}")
    if batch < 1:
        raise RequestError(f"--batch must be at least 1, got {batch}")
    if dtype not in DTYPE_NAMES:
        raise RequestError(f"--dtype must be one of {', '.join(DTYPE_NAMES)}, got '{dtype}'")
    try:
        sampling = SamplingSpec(sampler, steps, cfg_scale, class_label)
    except SamplingError as err:
        raise RequestError(str(err)) from None
    if max_magnification is not None and not 1 <= max_magnification < float("inf"):
        raise RequestError(f"--max-magnification must be a number >= 1, got {max_magnification}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise RequestError(f"checkpoint not found: {checkpoint}")
    fmt, outputs = resolve_outputs(out, seeds)
    try:
        codec = check_compression(compression, fmt, bits)
    except SinkError as err:
        raise RequestError(str(err)) from None
    if checkpoint is not None:
        refuse_overwrite(outputs, [checkpoint])
    request = RenderRequest(hw, seeds, outputs, fmt, bits, box, extra, tile, batch, parse_device(device),
                            dtype, sampling, checkpoint, max_magnification, codec, spec)
    try:
        check_outputs(request)
    except SinkError as err:
        raise RequestError(str(err)) from None
    return request


def make_canvas(mode: str, scale: float, window_mode: str, window_stride: int | None, window_batch: int,
                labels: str | None) -> CanvasSpec:
    """The ``CanvasSpec`` of the ``--canvas`` options; ``--labels`` is a layout file of ``class_label`` terms."""
    boxes = ()
    if labels is not None:
        from infd.inverse.layout import LayoutError, load_layout
        try:
            layout = load_layout(labels)
            layout.require_kinds(("class_label",), "--labels")
        except LayoutError as err:
            raise RequestError(str(err)) from None
        boxes = tuple((t.box, t.label) for t in layout.terms)
    try:
        return CanvasSpec(mode, scale, window_mode, window_stride, window_batch, boxes)
    except ValueError as err:
        raise RequestError(str(err)) from None


GRID_GAP = 8  # pixels between the images of an --also-sizes grid


def grid_size(sizes: list[tuple[int, int]], gap: int = GRID_GAP) -> tuple[int, int]:
    """``(H, W)`` of images of ``sizes`` laid side by side, top-aligned, ``gap`` pixels apart."""
    return max(h for h, _ in sizes), sum(w for _, w in sizes) + gap * (len(sizes) - 1)


def check_outputs(request: RenderRequest) -> None:
    """The format can hold each output and every output path can be written (``SinkError``)."""
    fmt, bits = request.format, request.bits
    if request.also_sizes:
        if fmt.name == "tiff" or bits != 8:
            raise SinkError("--also-sizes writes one 8-bit image grid: use a .png, .jpg or .webp output")
        sizes = request.grid_sizes
        grid = request.file_size
        check_capacity(fmt, grid, bits)
        check_memory(sum(3 * 4 * h * w for h, w in sizes) + 3 * grid[0] * grid[1],
                     "rendering every --also-sizes size in memory")
    else:
        check_capacity(fmt, request.output_size, bits, batch=request.render_batch,
                       directory=request.outputs[0].parent, compressed=request.compression is not None)
    for path in request.outputs:
        check_writable(path)
