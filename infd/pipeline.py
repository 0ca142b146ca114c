"""The Python API: one object that samples, encodes, renders, super-resolves and inpaints.

    import infd
    pipe = infd.load()                                   # the bundled model; or infd.load("model.safetensors")
    images = pipe.sample(seeds=[0, 1], height=768, width=1024, steps=30)       # a list of PIL images
    z = pipe.encode(images[0])                           # latents (1, C, h, w) of any RGB image
    crop = pipe.render(z, height=8192, width=8192, region=infd.Region(top=4096, left=4096, height=512, width=512))
    sr = pipe.super_resolve(images[0], scale=4)          # encode, render at 4x the image's side
    infd.save(pipe, "copy.safetensors")                  # infd.load reads it back

Conventions shared with the command lines: sizes are ``height=, width=`` keywords here and ``WxH`` there;
a window is a ``Region(top, left, height, width)`` here and ``x,y,w,h`` there, both in pixels of the
virtual image. Images come back clamped: PIL images (``output="pil"``, the default), ``(B, 3, H, W)``
float tensors in [0, 1] (``"tensor"``) or ``(B, H, W, 3)`` uint8 arrays (``"numpy"``). Images going in
are PIL images, file paths, ``(H, W, 3)`` uint8 arrays or ``(3, H, W)`` / ``(B, 3, H, W)`` tensors in
[0, 1]; the encoder sees their centred square, resized to its input size as in stage 1.

Everything renders through the one engine (``infd.rendering.engine``: tiled, any size, the checkpoint's
magnification range) and samples through the one seam (``infd.rendering.sampling.sample_latents``), so a
seed gives the same image here as with ``tools/render.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from infd import devices
from infd.checkpoint import save_model
from infd.diffusion.sampling import CLASS_PER_SEED, DEFAULT_CFG_SCALE, DEFAULT_SAMPLER, DEFAULT_STEPS, SamplingSpec
from infd.diffusion.windows import LabelBox, WindowSpec
from infd.models.tiled_decode import decode_canvas
from infd.renderers.coords import Region
from infd.rendering.canvas import CanvasSpec, canvas_latent_size, crop_region
from infd.rendering.engine import DTYPES, prepare_renderer, render
from infd.rendering.sampling import BUNDLED_CHECKPOINT, has_prior, latent_shape, load_render_model, sample_latents
from infd.rendering.sinks import quantize

OUTPUTS = ("pil", "tensor", "numpy")
ImageLike = Image.Image | str | Path | np.ndarray | torch.Tensor


class Pipeline:
    """A loaded infd model (an autoencoder or a diffusion bundle) on a device, ready to render.

    ``dtype`` is the renderer's compute type (``"fp32"``, or ``"bf16"`` / ``"fp16"`` autocast); the
    model itself stays fp32. ``source`` is the file it came from (``save`` refuses to overwrite it).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "auto", dtype: str = "fp32",
                 source: str | Path | None = None):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.device = devices.resolve_device(device)
        self.dtype = dtype
        self.model = model.to(self.device).eval()
        self.source = None if source is None else Path(source)
        self._renderer = prepare_renderer(self.model.renderer, self.device, DTYPES[dtype])

    @property
    def autoencoder(self) -> nn.Module:
        return getattr(self.model, "autoencoder", self.model)

    @property
    def has_prior(self) -> bool:
        """Whether ``sample`` runs a diffusion prior (a bundle) or decodes ``z ~ N(0, I)`` (an autoencoder)."""
        return has_prior(self.model)

    @property
    def input_size(self) -> int:
        """The encoder's (square) input side."""
        return self.autoencoder.config.input_size

    def sample_latents(self, seeds: int | Sequence[int] = 0, *, steps: int = DEFAULT_STEPS,
                       sampler: str = DEFAULT_SAMPLER, cfg_scale: float = DEFAULT_CFG_SCALE,
                       class_label: int | str | None = CLASS_PER_SEED, progress: bool = False,
                       canvas: tuple[int, int] | None = None, windows: WindowSpec | None = None,
                       boxes: Sequence[LabelBox] = ()) -> torch.Tensor:
        """Latents ``(len(seeds), C, h, w)``, one per seed (the prior's sampler, or N(0, I) without one).

        As ``tools/render.py``: a class-conditional prior gives seed s class s mod K (``class_label="seed"``)
        at guidance ``cfg_scale`` 3; ``class_label=None`` samples unconditionally.

        ``canvas = (h, w)``: a latent canvas larger than the trained size, denoised jointly in windows
        (``windows``; ``boxes``: a class label per box of the canvas; ``infd.diffusion.windows``)."""
        seeds = [seeds] if isinstance(seeds, int) else list(seeds)
        if not seeds:
            raise ValueError("seeds: give at least one seed")
        spec = SamplingSpec(sampler, steps, cfg_scale, class_label)
        joint = canvas is not None or windows is not None or bool(boxes)
        total = steps
        if joint and self.has_prior:
            shape = canvas or latent_shape(self.model)[1:]
            total = self.model.joint_windows_total(tuple(shape), spec, windows, tuple(boxes))
        bar = _StepBar(total, progress and self.has_prior)
        try:
            if joint:
                return sample_latents(self.model, seeds, spec, canvas=canvas, windows=windows, boxes=tuple(boxes),
                                      on_windows=bar.advance if self.has_prior else None)
            return sample_latents(self.model, seeds, spec, callback=bar.step if self.has_prior else None)
        finally:
            bar.close()

    def sample(self, seeds: int | Sequence[int] = 0, *, height: int = 512, width: int | None = None,
               region: Region | None = None, steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
               cfg_scale: float = DEFAULT_CFG_SCALE,
               class_label: int | str | None = CLASS_PER_SEED, output: str = "pil", progress: bool = False,
               canvas: str = "stretch", canvas_scale: float = 1.0):
        """Sample one image per seed and render it at ``height x width`` (default square), or only the
        ``region`` window of that virtual image.

        ``canvas`` (as ``tools/render.py --canvas``): ``stretch`` renders one square latent on the grid,
        ``crop`` renders it as a square of the longer side and returns the centred ``height x width``
        window, ``grow`` samples a latent canvas of the output's aspect (shorter side ``canvas_scale`` x the
        trained size) in windows."""
        size = (int(height), int(width if width is not None else height))
        CanvasSpec(canvas, canvas_scale)  # checks both
        shape = None
        if canvas == "crop":
            size, region = crop_region(size, region)
        elif canvas == "grow":
            multiple = (self.model.window_multiple() or 1) if self.has_prior else 1
            shape = canvas_latent_size(size, latent_shape(self.model)[1], canvas_scale, multiple)
        z = self.sample_latents(seeds, steps=steps, sampler=sampler, cfg_scale=cfg_scale, class_label=class_label,
                                progress=progress, canvas=shape)
        return self.render(z, height=size[0], width=size[1], region=region, output=output)

    @torch.inference_mode()
    def render(self, z: torch.Tensor, *, height: int, width: int | None = None, region: Region | None = None,
               output: str = "pil"):
        """Decode latents ``z (B, C, h, w)`` and render the virtual ``height x width`` image (or its
        ``region``), tile by tile; latents larger than the trained size are decoded in windows."""
        _check_output(output)
        if z.ndim == 3:
            z = z[None]
        phi = decode_canvas(self.model.decode, z.to(self.device, torch.float32), latent_shape(self.model)[1])
        return self.render_field(phi, height=height, width=width, region=region, output=output)

    @torch.inference_mode()
    def render_field(self, phi: torch.Tensor, *, height: int, width: int | None = None,
                     region: Region | None = None, output: str = "pil"):
        """Render a decoded field ``phi (B, C, h, w)`` (what ``render`` does after decoding)."""
        _check_output(output)
        size = (int(height), int(width if width is not None else height))
        pixels = render(self._renderer, phi, size, region, dtype=DTYPES[self.dtype])
        return _to_output(pixels, output)

    @torch.inference_mode()
    def encode(self, image: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Latents ``(B, C, h, w)`` of one image or a list of them (their centred squares)."""
        images = image if isinstance(image, (list, tuple)) else [image]
        inp = torch.cat([self._encoder_input(x) for x in images]).to(self.device)
        return self.autoencoder.encode(inp)

    def super_resolve(self, image: ImageLike, scale: float | None = None, *, height: int | None = None,
                      width: int | None = None, output: str = "pil"):
        """Encode ``image`` (its centred square) and render it ``scale`` times its side, or at
        ``height x width``: the autoencoder's arbitrary-scale super-resolution (as ``tools/eval.py`` measures it)."""
        if (scale is None) == (height is None):
            raise ValueError("super_resolve: give either scale or height (and width)")
        if isinstance(image, (str, Path)):
            image = _to_pil(image)  # decoded once, for its size and for the encoder
        if scale is not None:
            if not scale > 0:
                raise ValueError(f"scale must be > 0, got {scale}")
            side = min(_image_hw(image))
            height = width = max(1, round(scale * side))
        return self.render(self.encode(image), height=height, width=width, output=output)

    def inpaint(self, image: ImageLike, mask: ImageLike, *, seed: int = 0, steps: int = 50,
                sampler: str = "ddim", condition_scale: float | None = None, keep_known: bool = True,
                output: str = "pil", progress: bool = False):
        """Fill the white pixels of ``mask`` (white / 1 / True = fill, black = keep) in ``image``'s centred
        square, by sampling the prior under guidance towards the kept pixels (``infd.inverse.guided``).
        ``keep_known`` pastes the kept pixels back into the result. Needs a diffusion bundle."""
        from infd.inverse.conditions import ConditionTerms, MaskedPixels
        from infd.inverse.guided import solve_guided
        from infd.inverse.layout import MAX_TERM_SIDE
        from infd.renderers.coords import FractionalWindow

        _check_output(output)
        if not self.has_prior:
            raise ValueError("inpaint samples a diffusion prior: load a diffusion bundle, not an autoencoder")
        target = _square(_to_unit_tensor(image))[0] * 2 - 1  # (3, n, n) in [-1, 1]
        if target.shape[-1] > MAX_TERM_SIDE:
            raise ValueError(f"inpaint works at the image's own size, at most {MAX_TERM_SIDE} a side; got "
                             f"{target.shape[-1]} (resize the image first)")
        fill = _square(_to_unit_tensor(mask))[0].mean(dim=0, keepdim=True)
        if fill.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"mask {tuple(fill.shape[-2:])} and image {tuple(target.shape[-2:])} differ in size")
        known = (fill < 0.5).float()
        term = MaskedPixels("known", FractionalWindow.full(), target, known)
        spec = SamplingSpec(sampler, steps)
        result = solve_guided(self.model, ConditionTerms([term]), [seed], spec, condition_scale, progress)
        n = target.shape[-1]
        pixels = render(self._renderer, result.phi, (n, n), dtype=DTYPES[self.dtype])
        if keep_known:
            pixels = torch.where(known.bool(), target.to(pixels), pixels)
        return _to_output(pixels, output)

    def _encoder_input(self, image: ImageLike) -> torch.Tensor:
        """``(B, 3, S, S)`` in [-1, 1]: the centred square resized to the encoder's input as stage 1 does
        (Pillow's Lanczos; tensors, which Pillow cannot hold unrounded, the same kernel in float)."""
        from infd.data.patches import square_box
        from infd.data.resize import resize_pil, resize_region

        S = self.input_size
        if isinstance(image, torch.Tensor):
            x = _to_unit_tensor(image)
            left, top, n = square_box(x.shape[-1], x.shape[-2], "center_crop")
            arrays = (x * 255).permute(0, 2, 3, 1).contiguous().numpy()
            return torch.stack([resize_region(a, (S, S), box=(left, top, left + n, top + n)) for a in arrays]) / 127.5 - 1
        pil = _to_pil(image)
        left, top, n = square_box(pil.width, pil.height, "center_crop")
        return (resize_pil(pil, S, (left, top, left + n, top + n)) / 127.5 - 1)[None]


def load(path: str | Path | None = None, *, device: str | torch.device = "auto", dtype: str = "fp32") -> Pipeline:
    """A ``Pipeline`` for the infd checkpoint at ``path`` (default: the bundled model) on ``device``."""
    model = load_render_model(path)
    return Pipeline(model, device, dtype, source=BUNDLED_CHECKPOINT if path is None else path)


def save(pipe: Pipeline | nn.Module, path: str | Path) -> Path:
    """Write the pipeline's model to ``path`` (atomic; ``load(path)`` reads it back). Refuses to
    overwrite the file the pipeline was loaded from."""
    path = Path(path)
    source = getattr(pipe, "source", None)
    if source is not None and path.exists() and path.resolve() == Path(source).resolve():
        raise ValueError(f"{path} is the file this pipeline was loaded from: save to another path")
    model = pipe.model if isinstance(pipe, Pipeline) else pipe
    return save_model(model, path)


class _StepBar:
    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="sampling", disable=not enabled, dynamic_ncols=True)

    def step(self, *args) -> None:
        self.bar.update(1)

    def advance(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")


def _to_output(pixels: torch.Tensor, output: str):
    """Pixels ``(B, 3, H, W)`` in [-1, 1] -> PIL images, a [0, 1] tensor or a uint8 array (all clamped)."""
    if output == "tensor":
        return ((pixels.float().clamp(-1, 1) + 1) / 2).cpu()
    array = quantize(pixels, 8)
    return array if output == "numpy" else [Image.fromarray(a) for a in array]


def _to_pil(image: ImageLike) -> Image.Image:
    from infd.data.decode import DecodeConfig, decode_image

    if isinstance(image, (str, Path)):
        return decode_image(Path(image).read_bytes(), DecodeConfig())
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"arrays must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return Image.fromarray(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    raise TypeError(f"expected a PIL image, a path, an (H, W, 3) uint8 array or a tensor, got {type(image).__name__}")


def _to_unit_tensor(image: ImageLike) -> torch.Tensor:
    """``(B, 3, H, W)`` float in [0, 1] of any accepted image (a mask may be one-channel or boolean)."""
    if isinstance(image, torch.Tensor):
        x = image.float()
        x = x[None] if x.ndim == 3 else x[None, None] if x.ndim == 2 else x
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"tensors must be (3, H, W) or (B, 3, H, W) in [0, 1], got {tuple(image.shape)}")
        return x.expand(-1, 3, -1, -1).clamp(0, 1)
    if isinstance(image, np.ndarray) and image.ndim == 2:
        return torch.from_numpy(image.astype(np.float32) / (255 if image.dtype == np.uint8 else 1))[None, None] \
            .expand(1, 3, -1, -1).clamp(0, 1)
    array = np.asarray(_to_pil(image), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _square(x: torch.Tensor) -> torch.Tensor:
    """The centred square of ``(B, C, H, W)``: stage 1's ``center_crop`` box (``square_box``)."""
    from infd.data.patches import square_box

    left, top, n = square_box(x.shape[-1], x.shape[-2], "center_crop")
    return x[..., top:top + n, left:left + n]


def _image_hw(image: ImageLike) -> tuple[int, int]:
    if isinstance(image, torch.Tensor):
        return tuple(image.shape[-2:])
    if isinstance(image, np.ndarray):
        return image.shape[:2]
    pil = _to_pil(image)
    return pil.height, pil.width
