"""tools/inverse.py end to end on a tiny bundle: result at any size, the layout preview, one-line errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

import infd.rendering.sampling as sampling
from infd.checkpoint import save_model
from infd.inverse.conditions import load_image

from inverse_testing import PHOTO, ROOT, make_bundle, save_tiny_clip
from tool_testing import load_tool

SCRIPT = ROOT / "tools" / "inverse.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def read(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def tool():
    return load_tool("inverse")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_model(make_bundle(), tmp_path_factory.mktemp("ckpt") / "bundle.safetensors")


def test_super_resolution_writes_any_size_and_the_layout(tmp_path, checkpoint):
    out = tmp_path / "out" / "sr.png"
    result = run("--layout", ROOT / "configs/inverse/super_resolution.yaml", "--checkpoint", checkpoint,
                 "--solver", "optimize", "--optimize-field", "--optimize-steps", "60", "--steps", "2",
                 "--size", "96x64", "--also-size", "32", "--out", out, "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "photo (pixels): loss" in result.stdout and "PSNR" in result.stdout
    big, low, layout = read(out), read(tmp_path / "out" / "sr_32x32.png"), read(tmp_path / "out" / "sr_layout.png")
    assert big.shape == (64, 96, 3) and low.shape == (32, 32, 3) and layout.shape == (64, 96, 3)
    target = (load_image(PHOTO, (32, 32)).permute(1, 2, 0).numpy() + 1) * 127.5  # as the layout resizes it
    mse = ((low - target) ** 2).mean() / 255 ** 2
    assert 10 * np.log10(1 / mse) >= 35, result.stdout  # written at the condition's resolution: the input
    assert (layout != big).any(axis=2).sum() > 2 * (64 + 96)  # the box outline (and its label) drawn over it


def test_two_prompts_with_a_tiny_clip(tmp_path, checkpoint):
    pytest.importorskip("transformers")
    clip = save_tiny_clip(tmp_path / "clip")
    layout = yaml.safe_load((ROOT / "configs/inverse/two_prompts.yaml").read_text())
    for term in layout["terms"]:
        term.update(resolution=32, cutouts=2)  # small renders for the tiny CLIP
    (tmp_path / "layout.yaml").write_text(yaml.safe_dump(layout))
    out = tmp_path / "scene.png"
    result = run("--layout", "layout.yaml", "--checkpoint", checkpoint, "--clip", clip, "--steps", "3",
                 "--size", "40", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sky (clip_text): loss" in result.stdout and "moon (clip_text): loss" in result.stdout
    assert read(out).shape == (40, 40, 3) and read(tmp_path / "scene_layout.png").shape == (40, 40, 3)


def write_layout(tmp_path, term):
    Image.open(PHOTO).save(tmp_path / "photo.png")
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump({"terms": [term]}))
    return path


PIXELS = {"kind": "pixels", "box": [0, 0, 1, 1], "image": "photo.png"}
BAD = [
    ({**PIXELS, "box": [0, 0, 1.5, 1]}, [], "outside [0, 1]"),
    ({**PIXELS, "kind": "sketch"}, [], "unknown term kind 'sketch'"),
    ({**PIXELS, "image": "missing.png"}, [], "image not found"),
    ({**PIXELS, "resolution": 0}, [], "resolution must be positive"),
    ({"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "a cat"}, [], "pass --clip DIR"),
    ({"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "a cat"}, ["--clip", "nowhere"], "save_pretrained"),
    (PIXELS, ["--size", "0"], "at least 1 pixel"),
    (PIXELS, ["--solver", "magic"], "--solver must be one of"),
    (PIXELS, ["--out", "x.bmp"], "unsupported output extension"),
    (PIXELS, ["--condition-scale", "nan"], "--condition-scale must be"),
    (PIXELS, ["--checkpoint", "missing.safetensors"], "checkpoint not found"),
    (PIXELS, ["--class", "7"], "--class 7 is not a label of this model (0..3)"),
    (PIXELS, ["--steps", "5000"], "more than this model's 1000 diffusion steps"),
]


@pytest.mark.parametrize("term, args, message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_are_one_line_and_exit_code_2(tmp_path, tool, capsys, checkpoint, term, args, message):
    layout = write_layout(tmp_path, term)
    extra = [] if "--checkpoint" in args else ["--checkpoint", str(checkpoint)]
    code = tool.main(["--layout", str(layout), "--out", str(tmp_path / "r.png"), *extra, *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("inverse.py: error:") and message in err[0], err
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "r_layout.png").exists()


def test_checkpoints_without_a_prior_or_none_at_all(tmp_path, tool, capsys, monkeypatch):
    layout = write_layout(tmp_path, PIXELS)
    ae = save_model(make_bundle().autoencoder, tmp_path / "ae.safetensors")
    assert tool.main(["--layout", str(layout), "--checkpoint", str(ae), "--out", str(tmp_path / "r.png")]) == 2
    assert "without a diffusion prior" in capsys.readouterr().err
    unconditional = save_model(make_bundle(dm={"model": {"num_classes": None}}), tmp_path / "uncond.safetensors")
    assert tool.main(["--layout", str(layout), "--checkpoint", str(unconditional), "--class", "0",
                      "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "this model is unconditional" in err[0], err
    monkeypatch.setattr(sampling, "BUNDLED_CHECKPOINT", tmp_path / "missing" / "default.safetensors")
    assert tool.main(["--layout", str(layout), "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bundled model" in err[0] and "reinstall infd" in err[0] and "--checkpoint" in err[0]


def test_a_bad_layout_through_a_subprocess(tmp_path):
    layout = write_layout(tmp_path, {**PIXELS, "box": [0.2, 0.1, 0.2, 1]})
    result = run("--layout", layout, "--out", tmp_path / "r.png", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "term 0 (pixels): box [0.2, 0.1, 0.2, 1.0] is empty" in lines[0], lines
