"""tools/train.py dm: dry run, one-line errors with exit code 2 (bad keys, missing cache, another autoencoder),
and tools/render.py rendering the exported bundle."""
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import yaml
from PIL import Image

from dm_testing import ROOT, make_cache, tiny_autoencoder
from tool_testing import load_tool
from test_dm_train import tiny_dm_config

ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def train_main(*args) -> tuple[int, str, str]:
    module = load_tool("train")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = module.main(list(args))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("cli"), count=4)


def write_config(path, config: dict):
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_dry_run_resolves_the_cpu_configs():
    for name, backbone in (("dm_cpu_unet", "unet"), ("dm_cpu_uvit", "uvit")):
        rc, out, err = train_main("dm", "--config", f"configs/train/{name}.yaml", "--dry-run", "--set", "max_steps=7")
        assert rc == 0, err
        config = yaml.safe_load(out)
        assert config["max_steps"] == 7 and config["diffusion"]["backbone"] == backbone
        assert config["diffusion"]["model"]["in_channels"] == 6 and config["latents"]["urls"].startswith(("latents/v4views/", "latents/v5views/"))
        assert config["autoencoder"] == "wip/ae_cpu_v4.safetensors"


def test_setup_errors_are_one_line_and_exit_2(cache, tmp_path):
    other_ae = tmp_path / "other_ae.safetensors"
    tiny_autoencoder(other_ae, seed=1)
    cases = {
        "unknown config key 'diffusion.model.chanels'": tiny_dm_config(cache, tmp_path / "a", diffusion={
            "backbone": "unet", "model": {"chanels": 3}}),
        "latent shard not found": tiny_dm_config(cache, tmp_path / "b", latents={
            "urls": cache["latents"].replace("lat-", "missing-"), "stats": str(cache["summary"].stats_path)}),
        "latent cache statistics not found": tiny_dm_config(cache, tmp_path / "c", latents={
            "urls": str(tmp_path / "nowhere-{00..01}.tar")}),
        "made with another autoencoder": tiny_dm_config(cache, tmp_path / "d", autoencoder=str(other_ae)),
        "checkpoint not found": tiny_dm_config(cache, tmp_path / "e", autoencoder=str(tmp_path / "none.safetensors")),
    }
    for message, config in cases.items():
        rc, _, err = train_main("dm", "--config", write_config(tmp_path / "run.yaml", config), "--no-progress")
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, (message, err)
    assert not (tmp_path / "d" / "checkpoints").exists()  # nothing trained
    rc, _, err = train_main("dm", "--config", "configs/train/dm_cpu_unet.yaml", "--set", "latent_norm=median")
    assert rc == 2 and "latent_norm" in err
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "dm", "--config",
                           write_config(tmp_path / "bad.yaml", cases["made with another autoencoder"])],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "re-run tools/cache_latents.py" in proc.stderr, \
        proc.stderr


def test_render_cli_renders_the_exported_bundle(cache, tmp_path):
    rc, out, err = train_main("dm", "--config", write_config(tmp_path / "run.yaml", tiny_dm_config(
        cache, tmp_path / "run", max_steps=4)), "--no-progress")
    assert rc == 0 and "stopped at step 4" in out, err
    bundle = tmp_path / "run" / "bundle.safetensors"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "render.py"), "--checkpoint", str(bundle), "--size", "24",
                           "--seed", "0-1", "--steps", "3", "--out", str(tmp_path / "out") + "/"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no diffusion prior" not in proc.stderr
    images = [np.asarray(Image.open(tmp_path / "out" / f"seed{s:04d}.png")) for s in (0, 1)]
    assert all(img.shape == (24, 24, 3) for img in images) and not np.array_equal(images[0], images[1])
