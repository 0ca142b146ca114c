"""The coordinate convention: pixel centres, (y, x) order, cells, regions and tiles."""
import pytest
import torch

from infd.renderers.coords import (QueryGrid, Region, as_grid, dense_coord, is_regular_grid, iter_tiles, make_axes,
                              make_cell, make_coord, make_query, make_query_grid, pixel_centres)


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
