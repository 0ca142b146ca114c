"""Shared helpers of the inverse-problem tests: a tiny bundle, a tiny random CLIP saved to disk, the photo."""
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from infd.config import load_config
from infd.diffusion.bundle import LatentDiffusion, LatentDiffusionConfig
from infd.diffusion.config import load_diffusion_config
from infd.models.autoencoder import AutoencoderConfig

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "fixtures" / "chelsea_64.png"


def make_bundle(seed: int = 0, ae: dict | None = None, dm: dict | None = None) -> LatentDiffusion:
    """configs/ae/tiny.yaml + configs/dm/unet_tiny.yaml with random weights (zero-initialised layers randomised).

    The tests use a KL bottleneck: a random VQ codebook sits near zero, so every latent would decode to
    nearly the same field and gradients would only pass straight through.
    """
    ae = load_config(AutoencoderConfig, ROOT / "configs/ae/tiny.yaml", overrides={"bottleneck": "kl", **(ae or {})})
    config = LatentDiffusionConfig(autoencoder=ae, diffusion=load_diffusion_config(ROOT / "configs/dm/unet_tiny.yaml", dm))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bundle = LatentDiffusion(config).eval()
        with torch.no_grad():
            for p in bundle.backbone.parameters():
                if not p.any():
                    p.normal_(0, 0.05)
    return bundle


def byte_level_chars() -> list[str]:
    """The 256 characters a byte-level BPE uses for the bytes 0..255 (printable bytes map to themselves)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(others))]


def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny ``CLIPModel`` and a byte-level ``CLIPTokenizer`` (no merges), saved to ``path``."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in byte_level_chars():
            vocab[c + suffix] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config=dict(vocab_size=len(vocab), max_position_embeddings=16, bos_token_id=0,
                                         eos_token_id=1, pad_token_id=1, **layers),
                        vision_config=dict(image_size=32, patch_size=8, **layers), projection_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


def load_photo(size: int | None = None) -> torch.Tensor:
    """The fixture photo as ``(3, h, w)`` in [-1, 1], Lanczos-resized to ``size`` if given."""
    with Image.open(PHOTO) as image:
        image = image.convert("RGB")
        if size is not None:
            image = image.resize((size, size), Image.LANCZOS)
        array = np.asarray(image, dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1
