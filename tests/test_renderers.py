"""Renderers: any size from any field, locality (tiled == full, regions of huge images), the index
gather against grid_sample, the irregular path, gradients and bf16 autocast."""
import pytest
import torch

from infd.renderers import clif as clif_module, liif as liif_module
from infd.renderers import (CLIF, CLIFConfig, ConvHead, ConvHeadConfig, LIIF, LIIFConfig, Region, RendererConfig,
                       iter_tiles, make_query, make_query_grid, make_renderer)
from infd.renderers.fast import FastCLIF
from infd.renderers.reference import ReferenceCLIF
from infd.renderers.region import render_region
from infd.rendering.engine import render

C = 6


def tiny(name: str, channels: int = C, width: int = 32):
    """Small renderers of every kind, in eval mode (none of them has train-time behaviour)."""
    if name in ("clif", "clif_fast"):
        renderer = CLIF(CLIFConfig(field_channels=channels, hidden=width)).eval()
        return FastCLIF(renderer) if name == "clif_fast" else renderer  # the inference path, or the module
    if name == "clif_layer":
        return CLIF(CLIFConfig(field_channels=channels, hidden=width, norm="layer")).eval()
    if name == "liif":
        return LIIF(LIIFConfig(field_channels=channels, hidden=(width // 2,) * 2)).eval()
    return ConvHead(ConvHeadConfig(field_channels=channels)).eval()


MODULES = ["clif", "clif_layer", "liif", "conv_head"]  # the renderer modules (differentiable)
KINDS = MODULES + ["clif_fast"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size, field", [((37, 91), (5, 9)), ((1, 1), (4, 4)), ((3, 2), (16, 13))])
def test_any_size_from_any_field(kind, size, field):
    phi = torch.randn(2, C, *field)
    coord, cell = make_query(size, batch=2)
    with torch.no_grad():
        rgb = tiny(kind)(phi, coord, cell)
    assert rgb.shape == (2, 3, *size)
    assert torch.isfinite(rgb).all()
    assert not torch.equal(rgb[0], rgb[1])  # different fields give different images


@pytest.mark.parametrize("kind", KINDS)
def test_large_render_with_tiny_width(kind):
    renderer = tiny(kind, channels=2, width=4)
    phi = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        rgb = render_region(renderer, phi, (1024, 1024))
    assert rgb.shape == (1, 3, 1024, 1024) and torch.isfinite(rgb).all()


def test_make_renderer_from_config():
    renderer = make_renderer(RendererConfig("clif", {"hidden": 32}), field_channels=C)
    assert isinstance(renderer, CLIF) and renderer.config.field_channels == C and renderer.radius == 6


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tile", [8, 16, (7, 13)])  # 8 and 16 divide 32x48; (7, 13) does not
def test_tiled_equals_full(kind, tile):
    """The engine's padded tiles join into one full-grid call of the renderer (a CLIF module's tiles
    take the inference path there, so this also holds FastCLIF to the plain math)."""
    renderer = tiny(kind)
    phi = torch.randn(2, C, 9, 11)
    with torch.no_grad():
        full = render_region(renderer, phi, (32, 48))
    tiled = render(renderer, phi, (32, 48), tile=tile)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", MODULES)
def test_padded_windows_of_a_module_equal_its_full_render(kind):
    renderer = tiny(kind)  # the module itself, as training and gradient-based callers run it
    phi = torch.randn(2, C, 9, 11)
    with torch.no_grad():
        full = render_region(renderer, phi, (32, 48))
        for region in iter_tiles((32, 48), (7, 13)):
            rows, cols = region.slices()
            torch.testing.assert_close(render_region(renderer, phi, (32, 48), region), full[:, :, rows, cols],
                                       atol=1e-5, rtol=0)


@pytest.mark.slow
def test_region_of_virtual_8192_image_equals_full_render():
    # A genuine full 8192^2 render: 5-10 s (load-dependent) and ~2.4 GB peak at this width (measured,
    # on the inference path).
    renderer = FastCLIF(CLIF(CLIFConfig(field_channels=2, hidden=2, num_blocks=1)).eval())
    phi = torch.randn(1, 2, 12, 10)
    size = (8192, 8192)
    with torch.no_grad():
        full = render_region(renderer, phi, size)
        for region in [Region(0, 0, 20, 30), Region(4093, 5001, 17, 9), Region(8192 - 13, 8192 - 40, 13, 40)]:
            rows, cols = region.slices()
            torch.testing.assert_close(render_region(renderer, phi, size, region), full[:, :, rows, cols],
                                       atol=1e-5, rtol=0)
    del full


@pytest.mark.parametrize("fast", [True, False])
def test_clif_without_norm_equals_grid_sample_reference(fast):
    ours = CLIF(CLIFConfig(field_channels=C, hidden=32)).eval()
    reference = ReferenceCLIF(CLIFConfig(field_channels=C, hidden=32), group_norm=False).eval()
    reference.load_state_dict(ours.state_dict())
    ours = FastCLIF(ours) if fast else ours
    phi = torch.randn(2, C, 7, 5)
    for size, region in [((23, 17), None), ((300, 200), Region(150, 99, 12, 20))]:
        coord, cell = make_query(size, region, batch=2)
        with torch.no_grad():
            torch.testing.assert_close(ours(phi, coord, cell), reference(phi, coord, cell), atol=1e-5, rtol=1e-5)


def test_irregular_queries_match_reference():
    ours = CLIF(CLIFConfig(field_channels=C, hidden=32)).eval()
    reference = ReferenceCLIF(CLIFConfig(field_channels=C, hidden=32), group_norm=False).eval()
    reference.load_state_dict(ours.state_dict())
    phi = torch.randn(1, C, 6, 6)
    coord = torch.rand(1, 10, 12, 2) * 2 - 1  # random points: the per-point path
    cell = torch.full((1, 10, 12, 2), 0.1)
    with torch.no_grad():
        torch.testing.assert_close(ours(phi, coord, cell), reference(phi, coord, cell), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", MODULES)
def test_axes_dense_and_per_point_queries_agree(kind, monkeypatch):
    renderer = tiny(kind)
    phi = torch.randn(2, C, 5, 6)
    grid, cell = make_query_grid((19, 14), batch=2)
    coord = grid.dense()
    with torch.no_grad():
        axes = renderer(phi, grid, cell)
        assert torch.equal(renderer(phi, coord, cell), axes)  # a dense regular grid is split into these axes
        for module in (clif_module, liif_module):  # hide the grid's regularity: every lookup goes per point
            monkeypatch.setattr(module, "as_grid", lambda c: c)
        per_point = renderer(phi, coord, cell.view(2, 1, 1, 2).expand(2, 19, 14, 2))
    torch.testing.assert_close(per_point, axes, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", MODULES)
def test_gradients_reach_field_and_weights(kind):
    renderer = tiny(kind).train()
    phi = torch.randn(1, C, 5, 5, requires_grad=True)
    coord, cell = make_query((12, 10))
    renderer(phi, coord, cell).square().mean().backward()
    assert phi.grad is not None and phi.grad.abs().sum() > 0
    for name, p in renderer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", MODULES)
def test_bf16_autocast_runs_close_to_fp32(kind):
    renderer = tiny(kind)
    phi = torch.randn(1, C, 6, 6)
    coord, cell = make_query((20, 24))
    with torch.no_grad():
        ref = renderer(phi, coord, cell)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = renderer(phi, coord, cell)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.05 * ref.abs().max().item(), rtol=0)
