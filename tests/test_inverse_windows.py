"""A condition's box renders as a region of its own grid: the same pixels as a full render, differentiably."""
import torch

from infd.renderers import CLIF, CLIFConfig, Region, render_region
from infd.renderers.coords import FractionalWindow


def tiny_clif():
    torch.manual_seed(0)
    clif = CLIF(CLIFConfig(field_channels=8, hidden=16, num_blocks=2)).eval()
    return clif, torch.randn(2, 8, 6, 6)


def test_a_box_renders_the_same_pixels_as_a_full_render():
    clif, phi = tiny_clif()
    with torch.no_grad():
        full = render_region(clif, phi, (40, 40))
        for box, region in [(FractionalWindow(0.25, 0.5, 0.75, 1.0), Region(10, 20, 20, 20)),
                            (FractionalWindow(0.0, 0.1, 0.2, 0.3), Region(0, 4, 8, 8)),
                            (FractionalWindow.full(), Region(0, 0, 40, 40))]:
            part = render_region(clif, phi, *Region.from_fractions(box, (region.height, region.width)))
            torch.testing.assert_close(part, full[:, :, region.top:region.bottom, region.left:region.right],
                                       atol=1e-5, rtol=1e-5)


def test_a_box_render_is_differentiable_in_the_field():
    clif, phi = tiny_clif()
    phi.requires_grad_(True)
    rgb = render_region(clif, phi, *Region.from_fractions(FractionalWindow(0.0, 0.0, 0.5, 0.5), (12, 12)))
    rgb.square().mean().backward()
    grad = phi.grad.abs().sum(dim=(0, 1))  # (6, 6): per field cell
    assert grad[:3, :3].min() > 0  # the box's own cells
    assert grad[5, 5] == 0  # far outside the box (beyond the renderer's radius): untouched


def test_a_box_off_every_pixel_grid_renders_on_its_own_cells():
    """A box whose cells fit no whole-pixel image: render_region must query the box's own cell, not 2 / size."""
    from test_coords import old_box_query

    clif, phi = tiny_clif()
    box, resolution = FractionalWindow(1 / 3, 0.05, 0.9, 0.77), (13, 17)
    size, region = Region.from_fractions(box, resolution)
    assert abs(2 / size[0] - 2 * (box.y1 - box.y0) / resolution[0]) > 1e-3  # 2 / size would be the wrong cell
    radius = int(clif.radius)
    padded = region.pad(radius, size)
    top, left = region.top - padded.top, region.left - padded.left
    coord, cell = old_box_query(box, resolution, radius, torch.float32)  # the same margins, clipped to the image
    with torch.no_grad():
        part = render_region(clif, phi, size, region, border="zero")  # the old query clipped its margins
        expected = clif(phi, coord.expand(2, -1, -1, -1), cell.expand(2, -1))[:, :, top:top + 13, left:left + 17]
    torch.testing.assert_close(part, expected, atol=1e-6, rtol=1e-6)
