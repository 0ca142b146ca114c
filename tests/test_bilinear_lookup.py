"""The bilinear field lookup of CLIF: the same taps on grids and points, grid_sample's values, a render
continuous across field cells, the fast path, the lookup switch of trained models and renderer-only
fine-tuning (``frozen``)."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from tool_testing import load_tool
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture
from infd.checkpoint import save_model
from infd.config import ConfigError, from_dict
from infd.convert.lookup import switch_lookup
from infd.eval import zoom
from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder, load_autoencoder
from infd.renderers import CLIF, CLIFConfig
from infd.renderers.coords import Region, make_query, make_query_grid
from infd.renderers.fast.clif import FastCLIF, uses_winograd
from infd.renderers.gather import bilinear_lookup
from infd.rendering.engine import render
from infd.training.ae_loop import AETrainConfig, train_autoencoder


def test_grid_and_points_agree_to_the_bit_and_match_grid_sample():
    phi = torch.randn(2, 5, 7, 9)
    grid, _ = make_query_grid((30, 41), Region(3, 2, 24, 37), batch=2, margin=6)  # mirrored context too
    on_axes = bilinear_lookup(phi, grid)
    assert on_axes.shape == (2, 36, 49, 5)
    assert torch.equal(on_axes, bilinear_lookup(phi, grid.dense()))
    expected = F.grid_sample(phi, grid.dense().flip(-1), mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(on_axes, expected.permute(0, 2, 3, 1), atol=1e-5, rtol=0)


def test_a_window_takes_the_same_values_as_the_full_image():
    phi = torch.randn(1, 4, 6, 6)
    full = bilinear_lookup(phi, make_query_grid((97, 61))[0])
    window = bilinear_lookup(phi, make_query_grid((97, 61), Region(40, 13, 20, 30))[0])
    assert torch.equal(window, full[:, 40:60, 13:43])


def test_field_vectors_come_back_on_the_cell_centres_and_a_ramp_stays_linear():
    phi = torch.randn(1, 3, 8, 8)
    assert torch.equal(bilinear_lookup(phi, make_query_grid((8, 8))[0]).permute(0, 3, 1, 2), phi)
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)  # the value is the column index
    row = bilinear_lookup(ramp, make_query_grid((8, 64))[0])[0, 0, :, 0]
    inner = row[4:-4].diff()  # between the first and the last cell centre: one slope, no steps
    torch.testing.assert_close(inner, torch.full_like(inner, 1 / 8), atol=1e-5, rtol=0)
    assert torch.all(row[:4] == 0) and torch.all(row[-4:] == 7)  # clamped to the edge vectors outside


def clif(lookup, hidden=16):
    torch.manual_seed(0)
    return CLIF(CLIFConfig(field_channels=8, hidden=hidden, num_blocks=2, lookup=lookup)).eval()


def test_the_bilinear_render_shows_no_field_cells_where_the_nearest_one_does():
    phi = torch.randn(1, 8, 16, 16)
    size, window = (128, 128), Region(32, 32, 64, 64)  # 8x, inside the field
    ratios = {}
    for lookup in ("nearest", "bilinear"):
        renderer = clif(lookup)
        renderer.max_magnification = 8.0  # native: the renderer's own output, not the engine's resampling
        with torch.no_grad():
            rgb = render(renderer, phi, size, window)
        ratios[lookup] = zoom.cell_border_ratio(rgb, 16, size, window).mean
    assert ratios["bilinear"] < 1.3 < 2 < ratios["nearest"], ratios


@pytest.mark.parametrize("hidden", [16, 32])  # the library convs, and Winograd's on CPU
def test_fast_path_equals_the_module(hidden):
    renderer = clif("bilinear", hidden)
    assert uses_winograd(renderer) == (hidden >= 32)
    phi = torch.randn(2, 8, 6, 5)
    coord, cell = make_query((22, 19), batch=2)
    with torch.no_grad():
        plain = renderer(phi, coord, cell)
    torch.testing.assert_close(FastCLIF(renderer)(phi, coord, cell), plain, atol=1e-5, rtol=1e-5)


def test_the_lookup_is_checked():
    with pytest.raises(ValueError, match="lookup must be one of nearest, bilinear"):
        CLIFConfig(lookup="bicubic")
    assert CLIF(CLIFConfig(field_channels=8, hidden=16, lookup="bilinear")).conv_in.in_channels == 10


def tiny_autoencoder(lookup="nearest"):
    torch.manual_seed(0)
    return NeuralFieldAutoencoder(from_dict(AutoencoderConfig, {
        "input_size": 16, "channels": 8, "channel_mult": [1, 2], "z_channels": 3, "norm_groups": 4,
        "field_channels": 8, "renderer": {"name": "clif", "args": {"hidden": 8, "num_blocks": 1, "lookup": lookup}}}))


def test_switching_keeps_the_latent_space_and_the_1x_render():
    model = tiny_autoencoder().eval()
    switched = switch_lookup(model, "bilinear")
    assert switched.renderer.config.lookup == "bilinear"
    img = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = model.encode(img)
        assert torch.equal(switched.encode(img), z)
        phi = model.decode(z)
        assert torch.equal(switched.decode(z), phi)
        grid, cell = make_query_grid((16, 16))  # 1x: queries on the cell centres
        torch.testing.assert_close(switched.render(phi, grid, cell), model.render(phi, grid, cell), atol=1e-6, rtol=0)
        grid, cell = make_query_grid((64, 64))
        assert not torch.allclose(switched.render(phi, grid, cell), model.render(phi, grid, cell), atol=1e-3)
    back = switch_lookup(switched, "nearest")  # the relative coordinate comes back with zero weights
    w, w0 = back.renderer.conv_in.weight, model.renderer.conv_in.weight
    assert torch.all(w[:, 8:10] == 0) and torch.equal(w[:, :8], w0[:, :8]) and torch.equal(w[:, 10:], w0[:, 10:])
    with pytest.raises(ValueError, match="already uses the bilinear lookup"):
        switch_lookup(switched, "bilinear")


def test_the_tool_writes_a_new_file_and_never_its_input(tmp_path, capsys):
    tool = load_tool("convert_lookup")
    src = save_model(tiny_autoencoder(), tmp_path / "ae.safetensors", extra={"step": "12"})
    before = src.read_bytes()
    assert tool.main([str(src), "bilinear", str(tmp_path / "out.safetensors")]) == 0
    assert "nearest -> bilinear lookup (step 12)" in capsys.readouterr().out
    assert load_autoencoder(tmp_path / "out.safetensors").renderer.config.lookup == "bilinear"
    assert tool.main([str(src), "bilinear", str(src)]) == 2 and src.read_bytes() == before
    err = capsys.readouterr().err
    assert "error: dst" in err and "would overwrite the input" in err and err.count("\n") == 1


def test_frozen_parts_stay_as_loaded_and_the_renderer_trains(shards, tmp_path):
    frozen = ["encoder", "quant_conv", "post_quant_conv", "decoder"]
    config = from_dict(AETrainConfig, tiny_config(shards, tmp_path / "run", max_steps=3, image_every=0,
                                                  optimizer={"lr": 1e-2}, frozen=frozen))
    torch.manual_seed(config.seed)
    start = NeuralFieldAutoencoder(config.model).state_dict()
    trained = train_autoencoder(config, progress=False).model.state_dict()
    changed = {key.split(".")[0] for key in start if not torch.equal(start[key], trained[key])}
    assert changed == {"renderer"}
    with pytest.raises(ConfigError, match="frozen: unknown part 'encoders'"):
        replace(config, frozen=("encoders",))
    with pytest.raises(ConfigError, match="every part of the autoencoder is frozen"):
        replace(config, frozen=("encoder", "quant_conv", "post_quant_conv", "decoder", "renderer"))


def test_the_reference_clif_is_only_the_nearest_lookup():
    from infd.renderers.reference import ReferenceCLIF

    with pytest.raises(ValueError, match="nearest lookup, not 'bilinear'"):
        ReferenceCLIF(CLIFConfig(field_channels=8, hidden=32, lookup="bilinear"))
