"""Tiny stage-1 runs for tests: synthetic photos in shards and a config small enough for seconds per step."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infd.data.shards import write_shards


def make_photos(folder: Path, count: int = 6):
    """Smooth synthetic 'photos' of mixed sizes (gradients, discs, stripes)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = 48 + 8 * i, 64 - 4 * i
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([np.sin(6 * x + i), np.cos(5 * y - i), np.sin(4 * (x + y))], -1) * 0.4 + 0.5
        img[(y - 0.4) ** 2 + (x - 0.5) ** 2 < 0.05] = rng.uniform(0, 1, 3)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"img{i}.png")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_photos(root / "src")
    files = sorted((root / "src").iterdir())
    write_shards(files, root / "src", str(root / "shard-%02d.tar"), max_count=3)
    return str(root / "shard-{00..01}.tar")


def tiny_config(shards, run_dir, **overrides) -> dict:
    config = {
        "run_dir": str(run_dir),
        "model": {"input_size": 32, "channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1,
                  "z_channels": 3, "bottleneck": "kl", "field_channels": 16,
                  "renderer": {"name": "clif", "args": {"hidden": 16, "num_blocks": 1}}},
        "data": {"urls": shards, "batch_size": 2, "num_workers": 0, "shuffle_buffer": 4,
                 "patches": {"encoder_size": 32, "patch_size": 16, "max_size": 64}},
        "loss": {"perceptual_weight": 0.0, "gan_weight": 0.5, "gan_start_step": 3, "reg_weight": 1e-6,
                 "discriminator": {"base_channels": 8, "num_layers": 1}},
        "optimizer": {"lr": 2e-3}, "disc_optimizer": {"lr": 2e-3},
        "max_steps": 12, "log_every": 1, "image_every": 0, "checkpoint_every": 4, "keep_checkpoints": 5,
        "deterministic": True, "exact_resume": True,
    }
    config.update(overrides)
    return config
