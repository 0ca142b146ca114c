"""The tiled rendering engine: tiles join into the full render, regions equal windows, tile choice."""
import pytest
import torch

from render_testing import full_render
from infd.rendering.engine import (TILE_LADDER, bytes_per_pixel, choose_tile, inference_renderer, iter_render,
                                   plan_tiles, prepare_renderer, render, render_latent)
from infd.rendering.sinks import TensorSink
from infd.rendering.formats import SinkError
from infd.renderers import CLIF, CLIFConfig, LIIF, LIIFConfig
from infd.renderers.coords import Region, make_query
from infd.renderers.fast import FastCLIF
from infd.renderers.reference import ReferenceCLIF


def clif(hidden=16, blocks=2):
    return CLIF(CLIFConfig(field_channels=8, hidden=hidden, num_blocks=blocks)).eval()



def assert_same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size, tile", [
    ((48, 64), 16),   # tiles divide the image
    ((37, 53), 10),   # they do not; odd sizes
    ((37, 53), 7),    # tiles smaller than the padding radius
    ((33, 20), 4096),  # one tile larger than the image
    ((1, 1), 3), ((1, 9), 2), ((7, 1), 4),  # 1-pixel images and 1-pixel sides
])
def test_tiled_equals_full_render(size, tile):
    renderer = clif()
    phi = torch.randn(2, 8, 6, 5)
    tiled = render(renderer, phi, size, tile=tile)
    assert tiled.shape == (2, 3, *size)
    assert_same(tiled, full_render(renderer, phi, size))


def test_tiled_equals_full_for_liif():
    renderer = LIIF(LIIFConfig(field_channels=8, hidden=(16, 16))).eval()
    phi = torch.randn(1, 8, 5, 5)
    assert_same(render(renderer, phi, (29, 31), tile=8), full_render(renderer, phi, (29, 31)))


@pytest.mark.parametrize("region", [Region(0, 0, 10, 12), Region(11, 17, 19, 23), Region(30, 40, 7, 13),
                                    Region(36, 52, 1, 1), Region(0, 0, 37, 53)])
def test_region_equals_window_of_full_render(region):
    renderer = clif()
    phi = torch.randn(1, 8, 6, 5)
    full = full_render(renderer, phi, (37, 53))
    for tile in (5, 64):
        window = render(renderer, phi, (37, 53), region, tile=tile)
        assert_same(window, full[:, :, region.top:region.bottom, region.left:region.right])


class CountingRenderer(torch.nn.Module):
    """Wraps a renderer and counts the query pixels it is asked for."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.radius, self.pixels = inner, inner.radius, 0

    def forward(self, phi, coord, cell):
        self.pixels += coord.shape[1] * coord.shape[2]
        return self.inner(phi, coord, cell)


def test_zoom_into_huge_virtual_image_costs_only_the_region():
    renderer = CountingRenderer(clif())
    phi = torch.randn(1, 8, 6, 5)
    size, region = (65536, 65536), Region(30000, 41000, 24, 40)
    out = render(renderer, phi, size, region, tile=16)
    assert out.shape == (1, 3, 24, 40)
    r = renderer.radius
    assert renderer.pixels <= 6 * (16 + 2 * r) ** 2  # 2 x 3 padded tiles, nothing else
    # Same window rendered as one padded query grid directly:
    padded = region.pad(r, size)
    coord, cell = make_query(size, padded)
    with torch.no_grad():
        direct = renderer.inner(phi, coord, cell)[:, :, r:r + 24, r:r + 40]
    assert_same(out, direct)


def test_plan_covers_window_exactly_once():
    tiles = plan_tiles((100, 90), Region(10, 20, 35, 41), 16)
    covered = torch.zeros(100, 90, dtype=torch.int32)
    for t in tiles:
        covered[t.top:t.bottom, t.left:t.right] += 1
    assert covered[10:45, 20:61].eq(1).all() and covered.sum() == 35 * 41
    with pytest.raises(ValueError, match="outside"):
        plan_tiles((100, 90), Region(90, 0, 20, 5), 16)


def test_iter_render_subset_of_tiles_is_positioned_in_the_window():
    renderer = clif()
    phi = torch.randn(1, 8, 6, 5)
    region = Region(5, 6, 20, 30)
    tiles = plan_tiles((40, 50), region, 8)
    full = render(renderer, phi, (40, 50), region, tile=8)
    for rel, pixels in iter_render(renderer, phi, (40, 50), region, tiles=tiles[1::3]):
        assert_same(pixels, full[:, :, rel.top:rel.bottom, rel.left:rel.right])


def test_choose_tile_follows_the_budget():
    renderer = clif(hidden=32)
    per_pixel = bytes_per_pixel(renderer)
    assert per_pixel >= 4 * (8 + 4 + 32)  # at least the input and one hidden map in fp32
    r = renderer.radius
    for tile, smaller in ((128, 64), (1024, 512)):
        budget = (tile + 2 * r) ** 2 * per_pixel
        assert choose_tile(renderer, "cpu", budget=budget) == tile
        assert choose_tile(renderer, "cpu", budget=budget - 1) == smaller
        assert choose_tile(renderer, "cpu", batch=4, budget=4 * budget) == tile  # batch scales the need
        assert choose_tile(renderer, "cpu", batch=4, budget=4 * budget - 1) == smaller
    assert choose_tile(renderer, "cpu", budget=1) == TILE_LADDER[-1]
    assert choose_tile(renderer, "cpu") in TILE_LADDER  # from the available RAM


def test_bf16_autocast_is_close_to_fp32():
    renderer = clif()
    phi = torch.randn(1, 8, 6, 5)
    fp32 = render(renderer, phi, (20, 24), tile=8)
    bf16 = render(renderer, phi, (20, 24), tile=8, dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().max() < 0.05 and not torch.equal(bf16, fp32)


def test_tensor_sink_refuses_what_memory_cannot_hold():
    with pytest.raises(SinkError, match="memory"):
        TensorSink().check((10**6, 10**6), 1)


def test_render_latent_decodes_once_and_matches_phi_render():
    from infd.config import load_config
    from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder

    model = NeuralFieldAutoencoder(load_config(AutoencoderConfig, "configs/ae/tiny.yaml")).eval()
    z = torch.randn(1, 3, 8, 8)
    out = render_latent(model, z, (21, 45), tile=16)
    with torch.no_grad():
        phi = model.decode(z)
    assert_same(out, full_render(model.renderer, phi, (21, 45)))


def test_prepare_renderer_picks_the_inference_path_from_renderer_and_dtype():
    module = clif(hidden=32).train()
    fast = prepare_renderer(module, "cpu", workers=1)
    assert isinstance(fast, FastCLIF) and fast.clif is module and not module.training
    assert fast.winograd is not None and fast.workers == 1  # Winograd kernels made once, here
    assert prepare_renderer(fast, "cpu") is fast
    assert prepare_renderer(module, "cpu", torch.bfloat16) is module  # autocast runs the module
    liif = LIIF(LIIFConfig(field_channels=8, hidden=(16,)))
    assert prepare_renderer(liif, "cpu") is liif
    reference = ReferenceCLIF(CLIFConfig(field_channels=8, hidden=32))  # a subclass: other math
    assert inference_renderer(reference) is reference
    assert bytes_per_pixel(fast) == bytes_per_pixel(module)


def test_render_takes_the_inference_path_and_leaves_the_module_as_it_is():
    module = clif().train()
    phi = torch.randn(1, 8, 6, 5)
    prepared = prepare_renderer(clif(), "cpu")
    prepared.clif.load_state_dict(module.state_dict())
    assert torch.equal(render(module, phi, (21, 17), tile=8), render(prepared, phi, (21, 17), tile=8))
    assert module.training
