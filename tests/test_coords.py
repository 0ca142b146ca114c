"""The coordinate convention: pixel centres, (y, x) order, cells, regions, fractional windows and tiles."""
import math

import pytest
import torch

from infd.renderers.coords import (FractionalWindow, QueryGrid, Region, as_grid, check_resolution, dense_coord,
                                   is_regular_grid, iter_tiles, make_axes, make_cell, make_coord, make_query,
                                   make_query_grid, pixel_centres)


@pytest.mark.parametrize("n", [1, 2, 3, 37, 8192])
def test_pixel_centres_edges_and_spacing(n):
    c = pixel_centres(n, dtype=torch.float64)
    assert c.shape == (n,)
    assert c[0].item() == pytest.approx(-1 + 1 / n, abs=1e-15)
    assert c[-1].item() == pytest.approx(1 - 1 / n, abs=1e-15)
    if n > 1:
        torch.testing.assert_close(c.diff(), torch.full((n - 1,), 2 / n, dtype=torch.float64))
    torch.testing.assert_close(c, -c.flip(0))  # symmetric about 0


def test_single_pixel_is_the_centre():
    assert make_coord((1, 1)).tolist() == [[[0.0, 0.0]]]


def test_coord_is_y_then_x_on_non_square_grid():
    H, W = 3, 5
    coord = make_coord((H, W))
    assert coord.shape == (H, W, 2)
    ys, xs = pixel_centres(H), pixel_centres(W)
    for i in range(H):
        for j in range(W):
            assert coord[i, j].tolist() == [ys[i].item(), xs[j].item()]
    assert is_regular_grid(coord[None])


def test_cell_is_pixel_size_per_axis():
    cell = make_cell((4, 10), dtype=torch.float64)
    assert cell.tolist() == [0.5, 0.2]
    coord = make_coord((4, 10), dtype=torch.float64)
    torch.testing.assert_close(coord[1, 1] - coord[0, 0], cell)


def test_make_query_batches():
    coord, cell = make_query((6, 7), batch=3)
    assert coord.shape == (3, 6, 7, 2) and cell.shape == (3, 2)
    assert torch.equal(coord[2], make_coord((6, 7)))


@pytest.mark.parametrize("size, tile", [((12, 8), 4), ((37, 91), 16), ((37, 91), (5, 40)), ((3, 3), 10)])
def test_tiles_cover_each_pixel_once_with_the_full_grid_values(size, tile):
    full = make_coord(size)
    count = torch.zeros(size, dtype=torch.int64)
    for region in iter_tiles(size, tile):
        rows, cols = region.slices()
        count[rows, cols] += 1
        assert torch.equal(make_coord(size, region), full[rows, cols])  # bitwise: same float64 formula
    assert torch.equal(count, torch.ones_like(count))


def test_region_of_huge_virtual_image_matches_axis_entries():
    region = Region(8000, 123, 5, 7)
    ys, xs = make_axes((8192, 9000), region, dtype=torch.float64)
    assert ys.tolist() == pixel_centres(8192, dtype=torch.float64)[8000:8005].tolist()
    assert xs.tolist() == pixel_centres(9000, dtype=torch.float64)[123:130].tolist()


def test_region_pad_clips_at_border_and_relative_to():
    size = (20, 30)
    assert Region(0, 0, 5, 5).pad(3, size) == Region(0, 0, 8, 8)
    assert Region(10, 25, 10, 5).pad(3, size) == Region(7, 22, 13, 8)
    inner = Region(10, 12, 4, 4)
    assert inner.relative_to(inner.pad(2, size)) == Region(2, 2, 4, 4)


def test_bad_regions_and_sizes_fail_clearly():
    with pytest.raises(ValueError, match="positive"):
        Region(0, 0, 0, 3)
    with pytest.raises(ValueError, match="non-negative"):
        Region(-1, 0, 2, 2)
    with pytest.raises(ValueError, match="outside"):
        make_coord((10, 10), Region(5, 5, 6, 2))
    with pytest.raises(ValueError, match="positive"):
        make_coord((0, 4))
    with pytest.raises(ValueError, match="tile size"):
        list(iter_tiles((4, 4), 0))


def test_irregular_grid_is_detected():
    coord = make_coord((4, 5))[None].clone()
    assert is_regular_grid(coord)
    coord[0, 2, 3, 1] += 0.01
    assert not is_regular_grid(coord)


def old_box_query(box, resolution, radius, dtype):
    """``infd.inverse.regions`` before its boxes became regions: the margin that fits, then box_query."""
    def margins(lo, hi, n):
        size = (hi - lo) / n
        return (min(radius, math.floor(lo / size + 1e-6)), min(radius, math.floor((1 - hi) / size + 1e-6)))

    def axis(lo, hi, n, before, after):
        i = torch.arange(-before, n + after, dtype=torch.float64)
        return ((2 * lo - 1) + (hi - lo) * ((2 * i + 1) / n)).to(dtype)

    (h, w), (top, bottom), (left, right) = resolution, margins(box.y0, box.y1, resolution[0]), \
        margins(box.x0, box.x1, resolution[1])
    ys, xs = axis(box.y0, box.y1, h, top, bottom), axis(box.x0, box.x1, w, left, right)
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)
    cell = torch.tensor([2 * (box.y1 - box.y0) / h, 2 * (box.x1 - box.x0) / w], dtype=torch.float64).to(dtype)
    return coord[None], cell[None]


WINDOWS = [((0.0, 0.0, 1.0, 1.0), (7, 5)), ((0.25, 0.5, 0.75, 1.0), (20, 20)), ((0.1, 0.3, 0.7, 0.4), (6, 5)),
           ((1 / 3, 0.05, 0.9, 0.77), (13, 17)), ((0.0, 0.123, 0.2, 0.3), (8, 8)), ((0.62, 0.0, 1.0, 0.31), (9, 11))]


@pytest.mark.parametrize("box, resolution", WINDOWS)
@pytest.mark.parametrize("radius", [0, 2, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fractional_window_is_bitwise_the_old_box_query(box, resolution, radius, dtype):
    window = FractionalWindow(*box)
    size, region = Region.from_fractions(window, resolution)
    assert (region.height, region.width) == resolution
    padded = region.pad(radius, size)  # what render_region queries
    assert padded.grid == region.grid
    coord, cell = make_query(size, padded, dtype=dtype)
    expected_coord, expected_cell = old_box_query(window, resolution, radius, dtype)
    assert torch.equal(coord, expected_coord) and torch.equal(cell, expected_cell)


@pytest.mark.parametrize("size", [(7, 5), (64, 64), (33, 100)])
def test_whole_window_is_exactly_the_image_grid(size):
    got_size, region = Region.from_fractions(FractionalWindow.full(), size)
    assert got_size == size and (region.top, region.left) == (0, 0)
    coord, cell = make_query(size, region, batch=2)
    expected_coord, expected_cell = make_query(size, batch=2)
    assert torch.equal(coord, expected_coord) and torch.equal(cell, expected_cell)


def test_pixel_aligned_window_matches_the_region_of_the_image():
    window = FractionalWindow(8 / 32, 12 / 48, 24 / 32, 36 / 48)  # rows 8..24, cols 12..36 of a 32 x 48 image
    size, region = Region.from_fractions(window, (16, 24))
    assert size == (32, 48) and (region.top, region.left) == (8, 12)
    coord, cell = make_query(size, region)
    expected, expected_cell = make_query((32, 48), Region(8, 12, 16, 24))
    torch.testing.assert_close(coord, expected, atol=1e-7, rtol=0)
    torch.testing.assert_close(cell, expected_cell)


def test_window_pixels_tile_the_window_evenly():
    size, region = Region.from_fractions(FractionalWindow(0.1, 0.3, 0.7, 0.4), (6, 5))
    ys, xs = make_axes(size, region, dtype=torch.float64)
    cell = make_cell(size, region, dtype=torch.float64)
    # centres are half a cell inside the window edges (y0..y1 in [0, 1] is 2 y0 - 1 .. 2 y1 - 1)
    torch.testing.assert_close(ys[0] - cell[0] / 2, torch.tensor(2 * 0.1 - 1, dtype=torch.float64))
    torch.testing.assert_close(ys[-1] + cell[0] / 2, torch.tensor(2 * 0.7 - 1, dtype=torch.float64))
    torch.testing.assert_close(xs[-1] + cell[1] / 2, torch.tensor(2 * 0.4 - 1, dtype=torch.float64))
    torch.testing.assert_close(ys.diff(), cell[0].expand(5))


@pytest.mark.parametrize("values, message", [
    ((0.0, 0.0, 1.2, 1.0), "outside"), ((-0.1, 0.0, 0.5, 0.5), "outside"), ((0.5, 0.0, 0.5, 1.0), "empty"),
    ((0.6, 0.0, 0.2, 1.0), "empty"), ((0.0, float("nan"), 1.0, 1.0), "finite")])
def test_bad_windows_are_value_errors(values, message):
    with pytest.raises(ValueError, match=message):
        FractionalWindow(*values)


@pytest.mark.parametrize("resolution", [0, (0, 4), (4, -1), (4.0, 4), True])
def test_bad_resolutions_are_value_errors(resolution):
    with pytest.raises(ValueError, match="resolution"):
        check_resolution(resolution)


def test_query_grid_holds_the_axes_of_make_query():
    region = Region(3, 5, 4, 7)
    grid, cell = make_query_grid((40, 30), region, batch=2)
    coord, expected_cell = make_query((40, 30), region, batch=2)
    assert grid.shape == (2, 4, 7) and grid.ys.shape == (2, 4) and grid.xs.shape == (2, 7)
    assert torch.equal(grid.dense(), coord) and torch.equal(cell, expected_cell)
    assert dense_coord(grid).shape == (2, 4, 7, 2) and dense_coord(coord) is coord


def test_as_grid_splits_regular_dense_grids_once_and_leaves_the_rest():
    grid, _ = make_query_grid((6, 9), batch=2)
    assert as_grid(grid) is grid
    split = as_grid(grid.dense())
    assert isinstance(split, QueryGrid) and torch.equal(split.ys, grid.ys) and torch.equal(split.xs, grid.xs)
    scattered = torch.rand(2, 6, 9, 2)
    assert as_grid(scattered) is scattered
