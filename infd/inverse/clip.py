"""A small adapter over a transformers ``CLIPModel`` loaded from a local directory (no hub access).

``load_clip(path)`` reads a directory written by ``CLIPModel.save_pretrained`` and
``CLIPTokenizer.save_pretrained`` (``local_files_only=True``: nothing is downloaded at run time). The
adapter embeds prompts once (``encode_text``) and images differentiably (``encode_images``): images in
[-1, 1] are resized to the model's input size (antialiased bicubic), normalised with the CLIP mean and
std (from ``preprocessor_config.json`` when the directory has one), optionally as random cutouts.

No package ships CLIP weights; to provide them, on a machine with internet run::

    from transformers import CLIPModel, CLIPTokenizer
    CLIPModel.from_pretrained("openai/clip-vit-base-patch32").save_pretrained("clip-b32")
    CLIPTokenizer.from_pretrained("openai/clip-vit-base-patch32").save_pretrained("clip-b32")

copy ``clip-b32/`` here and pass ``--clip clip-b32``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
HOW_TO_PROVIDE = ("save a transformers CLIPModel and its CLIPTokenizer with save_pretrained(DIR) on a machine "
                  "with internet (e.g. from openai/clip-vit-base-patch32), copy DIR here and pass --clip DIR")


class ClipError(RuntimeError):
    """CLIP weights that are missing or cannot be loaded (one line saying how to provide them)."""


def _features(output) -> torch.Tensor:
    """Projected embeddings from ``get_*_features``: a tensor (transformers 4) or its ``pooler_output`` (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def make_cutouts(images: torch.Tensor, num: int, generator: torch.Generator | None = None,
                 min_fraction: float = 0.5) -> list[torch.Tensor]:
    """``num`` random square crops of ``images (B, 3, H, W)``: a list of ``num`` tensors ``(B, 3, s_k, s_k)``.

    Each cut has a side uniform in ``[min_fraction, 1] * min(H, W)`` and a uniform position (drawn from
    ``generator`` on the CPU); the same cut is taken from every image of the batch.
    """
    H, W = images.shape[-2:]
    side_max = min(H, W)
    side_min = max(1, round(min_fraction * side_max))
    cuts = []
    for _ in range(num):
        side = int(torch.randint(side_min, side_max + 1, (1,), generator=generator))
        top = int(torch.randint(0, H - side + 1, (1,), generator=generator))
        left = int(torch.randint(0, W - side + 1, (1,), generator=generator))
        cuts.append(images[:, :, top:top + side, left:left + side])
    return cuts


class ClipAdapter(nn.Module):
    """A frozen CLIP: ``encode_text(prompts) -> (N, D)``, ``encode_images(images) -> (B, K, D)``, unit norm."""

    def __init__(self, model: nn.Module, tokenizer, mean=OPENAI_MEAN, std=OPENAI_STD):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def max_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Unit-norm text embeddings ``(N, D)`` of ``prompts`` (truncated to the model's context)."""
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=self.max_tokens, truncation=True,
                                return_tensors="pt")
        device = self.mean.device
        out = self.model.get_text_features(input_ids=tokens["input_ids"].to(device),
                                           attention_mask=tokens["attention_mask"].to(device))
        return F.normalize(_features(out).float(), dim=-1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> the model's normalised ``(B, 3, S, S)`` input (differentiable)."""
        S = self.image_size
        if images.shape[-2:] != (S, S):
            images = F.interpolate(images, size=(S, S), mode="bicubic", antialias=True, align_corners=False)
        return ((images + 1) / 2 - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def encode_images(self, images: torch.Tensor, cutouts: int = 0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Unit-norm image embeddings ``(B, K, D)``: ``K = 1`` for the whole image, else ``K = cutouts``."""
        views = [images] if cutouts == 0 else make_cutouts(images, cutouts, generator)
        batch = torch.cat([self.preprocess(v) for v in views])  # (K B, 3, S, S)
        emb = F.normalize(_features(self.model.get_image_features(pixel_values=batch)).float(), dim=-1)
        return emb.view(len(views), images.shape[0], -1).transpose(0, 1)  # (B, K, D)


def _read_normalisation(path: Path) -> tuple[tuple, tuple]:
    config = path / "preprocessor_config.json"
    if not config.is_file():
        return OPENAI_MEAN, OPENAI_STD
    data = json.loads(config.read_text())
    return tuple(data.get("image_mean", OPENAI_MEAN)), tuple(data.get("image_std", OPENAI_STD))


def load_clip(path: str | Path | None, device: str | torch.device = "cpu") -> ClipAdapter:
    """The CLIP saved in directory ``path`` (model + tokenizer), frozen, on ``device``; ``ClipError`` if absent."""
    if path is None:
        raise ClipError(f"no CLIP weights given: {HOW_TO_PROVIDE}")
    path = Path(path)
    if not path.is_dir():
        raise ClipError(f"CLIP directory not found: {path}; {HOW_TO_PROVIDE}")
    if not (path / "config.json").is_file() or not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ClipError(f"{path} holds no CLIPModel (config.json and model.safetensors); {HOW_TO_PROVIDE}")
    try:
        from transformers import AutoTokenizer, CLIPModel
    except ImportError:
        raise ClipError("CLIP needs the transformers package: pip install 'infd[inverse]'") from None
    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        mean, std = _read_normalisation(path)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ClipError(f"cannot load CLIP from {path}: {message}; {HOW_TO_PROVIDE}") from None
    return ClipAdapter(model, tokenizer, mean, std).to(device)
