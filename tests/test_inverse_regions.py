"""Boxes of the virtual output: their pixel grids follow the one coordinate convention, and render like a full image."""
import pytest
import torch

from infd.inverse.regions import Box, box_query, check_resolution, render_box
from infd.renderers import CLIF, CLIFConfig, Region, make_cell, make_coord, make_query, render_region


def test_whole_box_is_exactly_the_image_grid():
    for H, W in [(7, 5), (64, 64), (33, 100)]:
        coord, cell = box_query(Box.full(), (H, W), batch=2)
        assert coord.shape == (2, H, W, 2) and cell.shape == (2, 2)
        assert torch.equal(coord[0], make_coord((H, W))) and torch.equal(coord[1], coord[0])
        assert torch.equal(cell[0], make_cell((H, W)))


def test_pixel_aligned_box_matches_the_region_of_the_image():
    H, W = 32, 48
    box = Box(8 / 32, 12 / 48, 24 / 32, 36 / 48)  # rows 8..24, cols 12..36
    coord, cell = box_query(box, (16, 24))
    expected, expected_cell = make_query((H, W), Region(8, 12, 16, 24))
    torch.testing.assert_close(coord, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(cell, expected_cell)


def test_box_pixels_tile_the_box_evenly():
    box = Box(0.1, 0.3, 0.7, 0.4)
    coord, cell = box_query(box, (6, 5), dtype=torch.float64)
    ys, xs = coord[0, :, 0, 0], coord[0, 0, :, 1]
    # centres are half a cell inside the box edges (box [y0, y1] in [0, 1] is [2 y0 - 1, 2 y1 - 1])
    torch.testing.assert_close(ys[0] - cell[0, 0] / 2, torch.tensor(2 * 0.1 - 1, dtype=torch.float64))
    torch.testing.assert_close(ys[-1] + cell[0, 0] / 2, torch.tensor(2 * 0.7 - 1, dtype=torch.float64))
    torch.testing.assert_close(xs[-1] + cell[0, 1] / 2, torch.tensor(2 * 0.4 - 1, dtype=torch.float64))
    torch.testing.assert_close(ys.diff(), cell[0, 0].expand(5))


@pytest.mark.parametrize("values, message", [
    ((0.0, 0.0, 1.2, 1.0), "outside"), ((-0.1, 0.0, 0.5, 0.5), "outside"), ((0.5, 0.0, 0.5, 1.0), "empty"),
    ((0.6, 0.0, 0.2, 1.0), "empty"), ((0.0, float("nan"), 1.0, 1.0), "finite")])
def test_bad_boxes_are_value_errors(values, message):
    with pytest.raises(ValueError, match=message):
        Box(*values)


@pytest.mark.parametrize("resolution", [0, (0, 4), (4, -1), (4.0, 4), True])
def test_bad_resolutions_are_value_errors(resolution):
    with pytest.raises(ValueError, match="resolution"):
        check_resolution(resolution)


def tiny_clif():
    torch.manual_seed(0)
    clif = CLIF(CLIFConfig(field_channels=8, hidden=16, num_blocks=2)).eval()
    return clif, torch.randn(2, 8, 6, 6)


def test_render_box_equals_the_same_pixels_of_a_full_render():
    clif, phi = tiny_clif()
    with torch.no_grad():
        full = render_region(clif, phi, (40, 40))
        for box, region in [(Box(0.25, 0.5, 0.75, 1.0), Region(10, 20, 20, 20)),
                            (Box(0.0, 0.1, 0.2, 0.3), Region(0, 4, 8, 8)), (Box.full(), Region(0, 0, 40, 40))]:
            part = render_box(clif, phi, box, (region.height, region.width))
            torch.testing.assert_close(part, full[:, :, region.top:region.bottom, region.left:region.right],
                                       atol=1e-5, rtol=1e-5)


def test_render_box_is_differentiable_in_the_field():
    clif, phi = tiny_clif()
    phi.requires_grad_(True)
    rgb = render_box(clif, phi, Box(0.0, 0.0, 0.5, 0.5), (12, 12))
    rgb.square().mean().backward()
    grad = phi.grad.abs().sum(dim=(0, 1))  # (6, 6): per field cell
    assert grad[:3, :3].min() > 0  # the box's own cells
    assert grad[5, 5] == 0  # far outside the box (beyond the renderer's radius): untouched
