"""infd.eval.zoom (cell-border ratio, frame rings) on stand-in renderers, and tools/bench_zoom.py end to end."""
import json
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from eval_testing import ROOT, tiny_autoencoder, tiny_bundle, write_photo_shards
from process_testing import run_group
from tool_testing import load_tool
from torch import nn

from infd.checkpoint import save_model
from infd.eval import zoom
from infd.eval.report import format_markdown
from infd.renderers.coords import Region, dense_coord, make_axes, pixel_centres
from infd.renderers.gather import nearest_index, nearest_lookup

SCRIPT = ROOT / "tools" / "bench_zoom.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


class Bilinear(nn.Module):
    """A continuous stand-in renderer: bilinear interpolation of the field's first 3 channels."""

    radius = 0

    def forward(self, phi, coord, cell):
        grid = dense_coord(coord).flip(-1).to(phi.dtype)  # (B, H, W, 2) in grid_sample's (x, y) order
        return F.grid_sample(phi[:, :3], grid, mode="bilinear", padding_mode="border", align_corners=False)


class Nearest(nn.Module):
    """A stand-in with cell structure: the nearest field vector plus a small slope inside the cell."""

    radius = 0

    def forward(self, phi, coord, cell):
        feat, rel = nearest_lookup(phi, coord)  # (B, H, W, C), (B, H, W, 2)
        return (feat[..., :3] + 0.1 * rel[..., 1:]).permute(0, 3, 1, 2)


class FieldModel(nn.Module):
    """``decode(z) = z`` (the latent is the field) with a stand-in renderer."""

    def __init__(self, renderer):
        super().__init__()
        self.renderer = renderer

    def decode(self, z):
        return z


def ramp_field(h=16, w=16, channels=3):
    """A smooth linear ramp ``phi[b, c, i, j] = (c + 1) (0.03 j + 0.02 i)``, shape ``(1, channels, h, w)``."""
    i, j = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([(c + 1) * (0.03 * j + 0.02 * i) for c in range(channels)])[None]


@pytest.mark.parametrize("cells, pixels", [(8, 8), (8, 64), (16, 24), (5, 7), (7, 3), (128, 1024), (33, 1000)])
def test_field_cells_are_the_renderers_nearest_indices(cells, pixels):
    expected = nearest_index(pixel_centres(pixels), cells)  # float32 centres, as the renderers get them
    assert torch.equal(zoom.field_cells(0, pixels, pixels, cells), expected)
    region = Region(pixels // 3, pixels // 4, max(pixels // 2, 1), max(pixels // 2, 1))
    ys, xs = make_axes((pixels, pixels), region)
    assert torch.equal(zoom.field_cells(region.left, region.width, pixels, cells), nearest_index(xs, cells))
    assert torch.equal(zoom.field_cells(region.top, region.height, pixels, cells), nearest_index(ys, cells))


def test_a_continuous_render_of_a_ramp_has_ratio_one_and_a_nearest_one_does_not():
    phi = ramp_field(64, 64)  # 64 px windows at 2x and 8x stay inside the first and last cell centres
    smooth = zoom.zoom_windows(FieldModel(Bilinear()), phi, [2, 8], window_px=64)
    for row in smooth:  # bilinear interpolation of a linear ramp is exactly linear there
        assert math.isclose(row.ratio.horizontal, 1, abs_tol=1e-3) and math.isclose(row.ratio.vertical, 1, abs_tol=1e-3)
    blocky = zoom.zoom_windows(FieldModel(Nearest()), phi, [8], window_px=64, repeats=2, reference_size=(64, 64))[0]
    assert blocky.ratio.horizontal > 3 and blocky.ratio.vertical > 3
    assert blocky.size == (512, 512) and blocky.window == Region(224, 224, 64, 64) and blocky.seconds > 0
    assert blocky.cost_vs_reference > 0 and math.isnan(smooth[0].cost_vs_reference)  # no reference: nan


def test_ratio_edge_cases():
    rgb = torch.rand(2, 3, 16, 16)
    at_one = zoom.cell_border_ratio(rgb, 16, (16, 16))  # every pair crosses a border
    assert math.isnan(at_one.horizontal) and math.isnan(at_one.mean)
    no_border = zoom.cell_border_ratio(rgb[..., :14, :14], (4, 4), (64, 64), Region(1, 1, 14, 14))
    assert math.isnan(no_border.horizontal) and math.isnan(no_border.vertical)  # inside one 16 px cell
    flat = torch.zeros(1, 3, 32, 32)
    flat[..., 16:] = 1  # a step at the border of two 16 px cells, flat inside
    assert zoom.cell_border_ratio(flat, 2, (32, 32)).horizontal == math.inf
    with pytest.raises(ValueError, match="the region"):
        zoom.cell_border_ratio(rgb, 4, (64, 64), Region(0, 0, 8, 8))


def test_frame_rings():
    ramp = torch.linspace(-1, 1, 96).expand(1, 3, 96, 96).clone()  # smooth: equal steps ring to ring
    d01, d12 = zoom.frame_rings(ramp + ramp.transpose(-1, -2))
    assert d01 > 0 and math.isclose(d01, d12, rel_tol=1e-6)
    framed = ramp.clone() * 0.2
    framed[..., :4, :] = framed[..., -4:, :] = framed[..., :, :4] = framed[..., :, -4:] = -1  # a dark frame
    d01, d12 = zoom.frame_rings(framed)
    assert d01 > 5 * d12
    smallest = ramp[..., :49, :49] + ramp[..., :49, :49].transpose(-1, -2)  # ring 2's sides are one row deep
    assert all(v > 0 and math.isfinite(v) for v in zoom.frame_rings(smallest))
    with pytest.raises(ValueError, match="3 rings"):
        zoom.frame_rings(ramp[..., :48, :], ring_px=8)


def run(*args, cwd):
    return run_group([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=ENV, timeout=300)


def test_the_tool_end_to_end_on_a_tiny_checkpoint(tmp_path):
    path = save_model(tiny_autoencoder(), tmp_path / "tiny.safetensors")
    result = run("--checkpoint", path, "--magnifications", 1, 2, 4, "--window", 48, "--frame-samples", 2,
                 "--frame-sizes", 49, 64, "--threads", 1, "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "N(0, I) latents" in out and "field 32x32x32" in out and "cost_vs_full_1024=" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert [rows[f"{m}x"][1:3] for m in (1, 2, 4)] == [["32x32", "32x32"], ["64x64", "48x48"], ["128x128", "48x48"]]
    assert rows["1x"][3:6] == ["n/a"] * 3 and float(rows["4x"][5]) > 0
    assert rows["49"][3] in ("yes", "no") and rows["64"][3] in ("yes", "no")


@pytest.mark.parametrize("args, message", [
    (["--window", "0"], "--window must be at least 1"),
    (["--magnifications", "0", "2"], "--magnifications must be at least 1"),
    (["--magnifications", "x"], "invalid int value"),
    (["--frame-sizes", "48"], "holds no 3 rings of 8 px"),
    (["--sampler", "euler"], "choose from"),
    (["--device", "gpu"], "--device must be"),
    (["--checkpoint", "missing.safetensors"], "checkpoint not found"),
])
def test_bad_arguments_are_one_line_and_exit_code_2(tmp_path, args, message):
    result = run(*args, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith("bench_zoom.py: error:") and "Traceback" not in result.stderr


def load_eval_tool():
    return load_tool("eval")


def test_eval_writes_the_zoom_ratio_and_the_frame_figures(tmp_path, capsys):
    data = write_photo_shards(tmp_path, "val", [100])[0]
    bundle = save_model(tiny_bundle(), tmp_path / "bundle.safetensors")
    out = tmp_path / "out"
    code = load_eval_tool().main(["--checkpoint", str(bundle), "--data", data, "--sizes", "32", "--scales", "2",
                                  "--no-lpips", "--num-photos", "1", "--steps", "2", "--zoom", "1", "2", "--frame",
                                  "--frame-samples", "2", "--frame-sizes", "56", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    ratio, frame = results["zoom"]["ratio"], results["zoom"]["frame"]
    assert list(ratio) == ["1", "2"] and ratio["1"]["mean"] is None and ratio["2"]["mean"] > 0  # nan -> null at 1x
    assert ratio["2"]["size"] == [64, 64] and ratio["2"]["window"] == [64, 64]
    assert list(frame) == ["56"] and frame["56"]["no_frame"] == (frame["56"]["d01"] <= frame["56"]["d12"])
    assert results["zoom"]["steps"] == 2 and results["zoom"]["frame_samples"] == 2
    markdown = (out / "results.md").read_text()
    assert "## Continuity at every magnification and the frame" in markdown
    assert "| 1x | 32x32 | 32x32 | n/a |" in markdown
    assert format_markdown(results) + "\n" == markdown  # the report renders again from results.json


@pytest.mark.parametrize("args, message", [(["--zoom", "0"], "--zoom magnifications must be at least 1"),
                                           (["--frame", "--frame-sizes", "48"], "--frame needs")])
def test_eval_zoom_options_are_checked(tmp_path, capsys, args, message):
    data = write_photo_shards(tmp_path, "val", [100])[0]
    ae = save_model(tiny_autoencoder(), tmp_path / "ae.safetensors")
    code = load_eval_tool().main(["--checkpoint", str(ae), "--data", data, "--no-lpips", *args,
                                  "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and not (tmp_path / "out").exists()


def test_cell_phase_contrast_sees_a_texture_at_the_cell_period_that_the_border_ratio_misses():
    cells, pixels = 16, 256  # 16 px a cell
    x = torch.arange(pixels, dtype=torch.float64)
    smooth = x / 200  # a ramp: no cell structure
    periodic = smooth + 0.2 * torch.cos(2 * math.pi * (x + 0.5) / 16)  # a ripple at the cell period
    as_image = lambda row: row.float().expand(1, 3, pixels, pixels).clone()  # noqa: E731 - varies along x
    ratio = zoom.cell_border_ratio(as_image(periodic), cells, (pixels, pixels)).horizontal
    assert ratio < 1.3  # the ripple is flat at the borders: the ratio alone calls it continuous
    assert zoom.cell_phase_contrast(as_image(periodic), cells, (pixels, pixels)).horizontal > 3
    assert zoom.cell_phase_contrast(as_image(smooth), cells, (pixels, pixels)).horizontal < 1.3
    blocks = as_image(torch.repeat_interleave(torch.rand(cells, dtype=torch.float64), 16))
    assert zoom.cell_phase_contrast(blocks, cells, (pixels, pixels)).horizontal == math.inf  # steps only at borders
    assert math.isnan(zoom.cell_phase_contrast(as_image(smooth)[..., :16, :16], cells, (16, 16)).vertical)  # 1 px a cell
    window = Region(40, 40, 128, 128)  # a window: phases from the virtual image's own pixel positions
    rows, cols = window.slices()
    cropped = as_image(periodic)[..., rows, cols]
    assert zoom.cell_phase_contrast(cropped, cells, (pixels, pixels), window).horizontal > 3
