"""tools/render.py through a subprocess: outputs, invalid input (exit 2, one line), interrupts, 2 ranks."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from process_testing import run_group

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "render.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "INFD_DIST_TIMEOUT_S": "120"}


def run(*args, cwd, launcher=(sys.executable,), timeout=240):
    return run_group([*launcher, str(SCRIPT), *map(str, args)], cwd=cwd, env=ENV, timeout=timeout)


def read(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


INVALID = [
    (["--size", "0"], "at least 1 pixel"),
    (["--size", "-5"], "--size must be"),
    (["--size", "abc"], "--size must be"),
    (["--size", "64x0"], "at least 1 pixel"),
    (["--num", "x"], "invalid int value"),
    (["--num", "-2"], "--num must be at least 1"),
    (["--seed", "7-3"], "is empty"),
    (["--size", "64", "--region", "60,0,10,10"], "outside the 64x64 image"),
    (["--size", "64", "--region=-1,0,10,10"], "outside the 64x64 image"),
    (["--size", "64", "--region", "1,2,3"], "four integers"),
    (["--sampler", "euler"], "choose from ddpm, ddim, dpmpp_2m"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--cfg-scale", "nan"], "--cfg-scale must be"),
    (["--tile", "0"], "--tile must be at least 1"),
    (["--dtype", "int8"], "--dtype must be one of"),
    (["--checkpoint", "missing.safetensors"], "checkpoint not found"),
    (["--size", "70000", "--out", "x.jpg"], "larger than JPEG can hold"),
    (["--size", "20000x100", "--out", "x.webp"], "larger than WEBP can hold"),
    (["--bits", "16", "--out", "x.jpg"], "8-bit"),
    (["--size", "100000x10000000", "--out", "x.tif"], "on disk"),
    (["--out", "x.bmp"], "unsupported output extension"),
    (["--out", "afile/x.png"], "not a directory"),
    (["--also-sizes", "64", "--region", "0,0,8,8"], "cannot be combined"),
    (["--max-magnification", "0.5"], "--max-magnification must be"),
    (["--cfg-scale", "inf"], "--cfg-scale must be a finite"),
    (["--seed", "18446744073709551616"], "--seed must be at most"),
    (["--size", "99999999999999999999999", "--region", "0,0,16,16"], "at most 2147483647 pixels"),
    (["--steps", "1000000000"], "more than this model's 1000 diffusion steps"),
    (["--class", "7"], "--class 7 is not a label of this model (0..3)"),
    (["--max-magnification", "inf"], "--max-magnification must be"),
    (["--compression", "deflate", "--out", "x.png"], "applies to .tif outputs"),
    (["--compression", "gzip", "--out", "x.tif"], "--compression must be none or one of"),
    (["--compression", "jpeg", "--bits", "16", "--out", "x.tif"], "8-bit images only"),
]


@pytest.mark.parametrize("args, message", INVALID, ids=[" ".join(a) for a, _ in INVALID])
def test_invalid_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    (tmp_path / "afile").write_text("a file, not a folder")
    before = sorted(tmp_path.rglob("*"))
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("render.py: error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even a temp file or folder


def test_corrupt_checkpoint_is_one_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    result = run("--checkpoint", bad, "--size", "16", "--out", tmp_path / "x.png", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read checkpoint" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_cuda_requested_without_cuda_is_exit_code_2(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run("--device", "cuda", "--size", "16", "--out", tmp_path / "x.png", cwd=tmp_path)
    assert result.returncode == 2 and "CUDA is not available" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.png").exists()


def test_max_magnification_override_smooths_a_zoom(tmp_path):
    """At 8x the bundled renderer's cells show; --max-magnification 1 renders the field's own pixels and
    resamples them, so no column pair stands out: the largest neighbour step shrinks."""
    steps = {}
    for limit in ("4", "1"):
        result = run("--size", "1024", "--region", "256,256,128,64", "--steps", "2", "--max-magnification", limit,
                     "--class", "none", "--out", f"m{limit}.png", cwd=tmp_path)  # a textured sample at 2 steps
        assert result.returncode == 0, result.stderr
        image = read(tmp_path / f"m{limit}.png")
        steps[limit] = np.abs(np.diff(image, axis=1)).max(axis=(0, 2)).mean()
    assert steps["1"] < steps["4"]


def test_render_png_region_and_seeds(tmp_path):
    result = run("--size", "40x30", "--seed", "1", "--tile", "16", "--out", "full.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # no checkpoint: the bundled model
    full = read(tmp_path / "full.png")
    assert full.shape == (30, 40, 3) and full.std() > 0
    result = run("--size", "40x30", "--seed", "1", "--tile", "16", "--region", "5,7,20,10", "--out", "region.png",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    window = read(tmp_path / "region.png")
    assert window.shape == (10, 20, 3)
    assert np.abs(window - full[7:17, 5:25]).max() <= 1  # other tiles: float rounding may move one step
    result = run("--size", "24", "--seed", "0-1", "--out", "many/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seeds = [read(tmp_path / "many" / f"seed000{i}.png") for i in (0, 1)]
    assert not np.array_equal(*seeds)


def test_also_sizes_makes_one_grid(tmp_path):
    result = run("--size", "32", "--also-sizes", "8,16x12", "--out", "grid.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    grid = read(tmp_path / "grid.png")
    assert grid.shape == (32, 8 + 8 + 16 + 8 + 32, 3)  # 8, 16x12 (w x h), 32 by area, 8-pixel gaps
    assert (grid[8:, :8] == 255).all() and (grid[:, 8:16] == 255).all() and (grid[12:, 16:32] == 255).all()
    assert grid[:8, :8].std() > 0 and grid[:, -32:].std() > 0
    assert result.stdout.strip().endswith(f"({grid.shape[1]}x{grid.shape[0]})"), result.stdout  # the grid's size


def test_compressed_tiff_reads_back_identical(tmp_path):
    import tifffile

    from infd.rendering.formats import TIFF_COMPRESSIONS, tiff_codec_available

    for name in ("none", "deflate"):
        result = run("--size", "96x80", "--seed", "2", "--steps", "3", "--compression", name, "--out", f"{name}.tif",
                     cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    with tifffile.TiffFile(tmp_path / "none.tif") as raw, tifffile.TiffFile(tmp_path / "deflate.tif") as packed:
        assert raw.pages[0].compression == 1 and packed.pages[0].compression == 8  # none, Adobe deflate
        np.testing.assert_array_equal(packed.asarray(), raw.asarray())
    assert (tmp_path / "deflate.tif").stat().st_size < (tmp_path / "none.tif").stat().st_size
    missing = [n for n in TIFF_COMPRESSIONS if not tiff_codec_available(n)]
    if missing:  # e.g. zstd and jpeg without imagecodecs: one line naming what is there
        result = run("--compression", missing[0], "--out", "x.tif", cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "available: none, deflate" in result.stderr
        assert not (tmp_path / "x.tif").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_render_leaves_no_file(tmp_path, sig):
    cmd = [sys.executable, str(SCRIPT), "--size", "4096", "--tile", "16", "--out", str(tmp_path / "big.tif")]
    # A shell's background jobs (nohup ... &) inherit SIGINT ignored: give the tool Ctrl-C back, as a terminal would.
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(tmp_path.glob(".big.tif.*.tmp")):  # the temp file exists once tiles are being written
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no output, and the temp file is gone too


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["--size", "96x80", "--tile", "32", "--out", "one.tif"],  # one image, its tiles shared by both ranks
    ["--size", "48x40", "--tile", "16", "--seed", "0-2", "--batch", "2", "--out", "many/"],  # samples + tiles
], ids=["tiff-tiles", "png-samples"])
def test_two_processes_write_the_same_files_as_one(tmp_path, args):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    result = run(*args, cwd=one)
    assert result.returncode == 0, result.stderr
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    result = run(*args, cwd=two, launcher=torchrun)
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())  # no store left
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_a_full_disk_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    import errno

    from infd.rendering.png import PngWriter

    from tool_testing import load_tool

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PngWriter, "write_rows", full)
    assert load_tool("render").main(["--size", "40x30", "--out", str(tmp_path / "out.png")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("render.py: error:") and "No space left on device" in lines[-1], lines
    assert "Traceback" not in "\n".join(lines) and list(tmp_path.iterdir()) == []
