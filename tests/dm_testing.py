"""Shared helpers of the stage-2 tests: synthetic photo shards (with labels and a corrupt file), a tiny
random autoencoder checkpoint, and a tiny latent cache."""
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from infd.data.latent_cache import cache_latents
from infd.data.shards import ShardWriter
from infd.checkpoint import file_sha256, save_model
from infd.config import load_config
from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder

ROOT = Path(__file__).resolve().parents[1]
CORRUPT_KEY = "corrupt"


def photo_bytes(i: int) -> bytes:
    """A smooth synthetic 'photo' (PNG) of a size that varies with ``i``, mostly non-square."""
    h, w = 40 + 6 * (i % 4), 56 - 5 * (i % 3)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * x + i), np.cos(5 * y - i), np.sin(4 * (x + y) + 0.5 * i)], -1) * 0.4 + 0.5
    buf = io.BytesIO()
    Image.fromarray((img * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_photo_shards(folder: Path, count: int, per_shard: int, labels: bool = True, corrupt: bool = False) -> str:
    """Shards ``folder/img-%02d.tar`` of ``count`` photos (json ``label = i % 3`` when ``labels``), plus one
    truncated PNG when ``corrupt``; returns the brace pattern of the shards."""
    folder.mkdir(parents=True, exist_ok=True)
    with ShardWriter(str(folder / "img-%02d.tar"), max_count=per_shard) as writer:
        for i in range(count):
            meta = {"label": i % 3} if labels else {}
            writer.write(f"{i:04d}", {"png": photo_bytes(i), "json": json.dumps(meta).encode()})
            if corrupt and i == 1:
                writer.write(CORRUPT_KEY, {"png": photo_bytes(9)[:60], "json": b"{}"})
        paths = writer.close()
    return str(folder / f"img-{{00..{len(paths) - 1:02d}}}.tar")


def tiny_autoencoder(path: Path, seed: int = 0) -> NeuralFieldAutoencoder:
    """``configs/ae/tiny.yaml`` (32 x 32 input, 3 x 8 x 8 latents) with random weights, saved at ``path``."""
    torch.manual_seed(seed)
    model = NeuralFieldAutoencoder(load_config(AutoencoderConfig, ROOT / "configs" / "ae" / "tiny.yaml")).eval()
    save_model(model, path)
    return model


def make_cache(root: Path, count: int = 6, labels: bool = True, flip: bool = True) -> dict:
    """Photo shards, a tiny autoencoder and its latent cache under ``root``; returns their paths."""
    images = write_photo_shards(root / "images", count, per_shard=4, labels=labels)
    ae_path = root / "ae.safetensors"
    model = tiny_autoencoder(ae_path)
    summary = cache_latents(model.encode, images, str(root / "latents" / "lat-%02d.tar"),
                            encoder_size=model.config.input_size, batch_size=4, flip=flip, max_count=8,
                            stats_extra={"autoencoder": str(ae_path), "autoencoder_sha256": file_sha256(ae_path)})
    n = len(summary.shards)
    return {"images": images, "autoencoder": str(ae_path), "latents": str(root / "latents" / f"lat-{{00..{n - 1:02d}}}.tar"),
            "summary": summary}
