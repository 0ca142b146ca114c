"""tools/bench_canvas.py on a tiny bundle, and the seam measure of infd.eval.canvas."""
import os
import sys

import torch

from infd.checkpoint import save_model
from infd.eval.canvas import seam_ratio, window_borders
from inverse_testing import make_bundle
from process_testing import run_group
from tool_testing import ROOT

SCRIPT = ROOT / "tools" / "bench_canvas.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_seam_ratio_sees_a_step_at_a_window_border_and_not_a_ramp():
    canvas, size = (8, 16), (32, 64)  # 4 pixels per latent position
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 32, 64).clone()
    rows, cols = window_borders(canvas, [(0, 0, 8, 8), (0, 8, 8, 8)])
    assert (rows, cols) == (set(), {8})
    assert abs(seam_ratio(ramp, canvas, rows, cols).horizontal - 1) < 1e-4  # float32 linspace steps
    step = ramp.clone()
    step[..., 32:] += 0.2  # a jump between pixel columns 31 and 32: latent column 8, the border
    assert seam_ratio(step, canvas, rows, cols).horizontal > 10
    elsewhere = ramp.clone()
    elsewhere[..., 20:] += 0.2  # a jump inside a window
    assert seam_ratio(elsewhere, canvas, rows, cols).horizontal < 1
    assert seam_ratio(step, canvas, rows, cols).vertical != seam_ratio(step, canvas, rows, cols).vertical  # nan


def test_bench_prints_cost_ratios_and_seams_on_a_tiny_bundle(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_model(make_bundle(), path)
    result = run_group([sys.executable, str(SCRIPT), "--checkpoint", str(path),
                        "--areas", "1", "4", "--steps", "2", "--seam-samples", "1", "--threads", "1"],
                       cwd=tmp_path, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["shifted"], ["overlap"])]
    assert [(r[0], r[1]) for r in rows] == [("shifted", "1x"), ("shifted", "4x"), ("overlap", "1x"), ("overlap", "4x")]
    assert all(float(r[6]) > 0 for r in rows) and float(rows[0][6]) == 1.0
    assert sum(line.startswith("seams ") for line in lines) == 2


def test_bad_arguments_are_one_line(tmp_path):
    for args, message in ((["--areas", "3"], "square numbers"), (["--modes", "tiled"], "--modes must be among"),
                          (["--seam-canvas", "4"], "--seam-canvas must be HxW")):
        result = run_group([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=ENV, timeout=60)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
