"""The README's own-photos walkthrough, run as written on generated photos with tiny configs and few steps."""
import os
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from process_testing import run_group
from test_dm_train import tiny_dm_config
from tool_testing import ROOT
from train_testing import tiny_config


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text().split("## Your own photos, end to end", 1)[1]
    return text.split("```bash\n", 1)[1].split("```", 1)[0]


def make_photos(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        h, w = 64 + 8 * (i % 3), 96 - 8 * (i % 2)
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.stack([np.sin(5 * x + i), np.cos(4 * y - i), np.sin(3 * (x + y) + i)], -1) * 0.4 + 0.5
        img = (np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1) * 255).astype(np.uint8)
        name = "beach.jpg" if i == 0 else f"img{i}.png"
        Image.fromarray(img).save(folder / name)


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos)
    ae = tiny_config("unused.tar", "unused", image_every=2, checkpoint_every=2, num_val_images=2, val_sizes=[32, 64],
                     val_data={"mode": "whole", "resampled": False, "patches": {"encoder_size": 32}},
                     deterministic=False, exact_resume=False)
    dm = tiny_dm_config({"autoencoder": "unused", "latents": "unused.tar"}, "unused", sample_every=2,
                        checkpoint_every=2, deterministic=False, exact_resume=False)
    # as conditional as the config the README names, so the walkthrough must say what unlabelled photos need
    real = yaml.safe_load((ROOT / "configs" / "train" / "dm_cpu_unet.yaml").read_text())
    dm["diffusion"]["model"]["num_classes"] = real["diffusion"]["model"].get("num_classes")
    (tmp_path / "ae_tiny.yaml").write_text(yaml.safe_dump(ae))
    (tmp_path / "dm_tiny.yaml").write_text(yaml.safe_dump(dm))
    script = walkthrough()
    for old, new in [("~/photos", str(photos)), ("configs/train/ae_cpu_v4.yaml", str(tmp_path / "ae_tiny.yaml")),
                     ("configs/train/dm_cpu_unet.yaml", str(tmp_path / "dm_tiny.yaml")),
                     ("max_steps=20000", "max_steps=4"), ("max_steps=5000", "max_steps=4"), ("--views 200", "--views 3"),
                     ("python tools/", f"{sys.executable} {ROOT}/tools/")]:
        assert old in script, old  # the walkthrough still has the step this test shrinks
        script = script.replace(old, new)
    (tmp_path / "walkthrough.sh").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = run_group(["bash", "-euo", "pipefail", str(tmp_path / "walkthrough.sh")], cwd=tmp_path, env=env,
                     timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert len(list((tmp_path / "shards" / "mine" / "val").glob("*.tar"))) == 1
    assert (tmp_path / "runs" / "mine_ae" / "eval" / "results.md").is_file()
    assert (tmp_path / "runs" / "mine_dm" / "bundle.safetensors").is_file()
    for seed in range(4):
        with Image.open(tmp_path / "out" / "mine" / f"seed{seed:04d}.png") as image:
            assert image.size == (1024, 1024)
    with Image.open(tmp_path / "out" / "mine" / "beach_sr.png") as image:
        assert image.size == (512, 512)
