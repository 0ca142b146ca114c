"""CLIF's inference path (``FastCLIF``): each exact rewrite against the plain computation it replaces.

Torch runs single-threaded in the tests (conftest); the worker threads are an explicit argument.
"""
import pytest
import torch
import torch.nn.functional as F

from infd.renderers import CLIF, CLIFConfig, Region, make_query, make_query_grid
from infd.renderers.fast import FastCLIF, uses_winograd
from infd.renderers.fast.field_conv import axis_patterns, first_conv_regular
from infd.renderers.fast.threads import run_chunks
from infd.renderers.fast.winograd import conv3x3_winograd, winograd_weight


def direct_conv(x, weight, bias, pre_silu):
    """The plain conv in float64, ``(B, H, W, C) -> (B, H, W, D)``."""
    x = x.permute(0, 3, 1, 2).double()
    x = F.silu(x) if pre_silu else x
    return F.conv2d(x, weight.double(), bias.double(), padding=1).permute(0, 2, 3, 1)


@pytest.mark.parametrize("B, H, W, C, D", [(1, 1, 1, 3, 5), (2, 5, 4, 8, 8), (1, 37, 91, 16, 24), (1, 8, 12, 40, 32)])
@pytest.mark.parametrize("pre_silu", [False, True])
def test_winograd_equals_direct_conv(B, H, W, C, D, pre_silu):
    x = torch.randn(B, H, W, C)
    weight, bias = torch.randn(D, C, 3, 3) / (3 * C ** 0.5), torch.randn(D)
    expected = direct_conv(x, weight, bias, pre_silu)
    out = conv3x3_winograd(x, winograd_weight(weight), bias, pre_silu=pre_silu)
    assert out.shape == (B, H, W, D) and out.is_contiguous()
    torch.testing.assert_close(out.double(), expected, atol=2e-5 * expected.abs().max().item(), rtol=0)
    residual = torch.randn(B, H, W, D)
    summed = conv3x3_winograd(x, winograd_weight(weight), bias, pre_silu=pre_silu, accumulate=residual.clone())
    torch.testing.assert_close(summed.double(), expected + residual.double(),
                               atol=2e-5 * expected.abs().max().item(), rtol=0)


def test_winograd_on_threads_equals_single_thread():
    threads = torch.get_num_threads()
    x = torch.randn(1, 64, 64, 1024)  # big enough (>= 4M values) for run_chunks to use worker threads
    weight, bias = torch.randn(32, 1024, 3, 3) / 96, torch.randn(32)
    threaded = conv3x3_winograd(x, winograd_weight(weight), bias, pre_silu=True, workers=2)
    torch.testing.assert_close(threaded, conv3x3_winograd(x, winograd_weight(weight), bias, pre_silu=True),
                               atol=0, rtol=0)  # same bands, same ops: bitwise equal
    assert torch.get_num_threads() == threads  # the process's thread count is never touched


def test_run_chunks_on_workers_propagates_errors_and_leaves_threads_alone():
    threads = torch.get_num_threads()
    seen = []
    run_chunks(range(6), lambda job, state: seen.append((job, state)), lambda: "scratch", elements=1 << 30,
               workers=2)
    assert sorted(job for job, _ in seen) == list(range(6)) and {s for _, s in seen} == {"scratch"}

    def fail(job, state):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        run_chunks(range(3), fail, lambda: None, elements=1 << 30, workers=2)
    assert torch.get_num_threads() == threads


def test_axis_patterns():
    index = torch.tensor([0, 0, 1, 1, 1, 2])
    patterns, inverse = axis_patterns(index)
    triples = torch.stack([torch.tensor([-1, 0, 0, 1, 1, 1]), index, torch.tensor([0, 1, 1, 1, 2, -1])], 1)
    assert torch.equal(patterns[inverse], triples)
    assert patterns.shape[0] == len({tuple(t) for t in triples.tolist()})


@pytest.mark.parametrize("field, size, region", [
    ((5, 7), (37, 91), None),  # upsampling, non-square
    ((16, 13), (5, 4), None),  # downsampling
    ((6, 6), (1, 1), None),
    ((6, 5), (4000, 3000), Region(1990, 7, 21, 30)),  # window of a huge virtual image
])
def test_first_conv_at_field_resolution_equals_conv_of_query_features(field, size, region):
    clif = CLIF(CLIFConfig(field_channels=8, hidden=16))
    phi = torch.randn(2, 8, *field)
    coord, cell = make_query(size, region, batch=2)
    with torch.no_grad():
        expected = clif.conv_in(clif.query_features(phi, coord, cell)).permute(0, 2, 3, 1)
        out = first_conv_regular(clif.conv_in, phi, coord[:, :, 0, 0], coord[:, 0, :, 1], cell)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_first_conv_with_flipped_axes_and_per_image_grids():
    clif = CLIF(CLIFConfig(field_channels=4, hidden=8))
    phi = torch.randn(2, 4, 5, 6)
    coord, cell = make_query((17, 23), batch=2)
    coord = coord.clone()
    coord[1] = coord[1].flip(0, 1)  # image 1 is mirrored: indices decrease along both axes
    cell = cell * torch.tensor([[1.0], [0.5]])  # and has another cell
    with torch.no_grad():
        expected = clif.conv_in(clif.query_features(phi, coord, cell)).permute(0, 2, 3, 1)
        out = first_conv_regular(clif.conv_in, phi, coord[:, :, 0, 0], coord[:, 0, :, 1], cell)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_paper_size_fast_path_equals_plain_path(norm):
    clif = CLIF(CLIFConfig(field_channels=128, hidden=256, norm=norm)).eval()
    phi = torch.randn(1, 128, 6, 5)
    coord, cell = make_query((22, 19))
    fast = FastCLIF(clif)
    assert uses_winograd(clif) and fast.winograd is not None
    with torch.no_grad():
        plain = clif(phi, coord, cell)
    out = fast(phi, coord, cell)
    assert out.shape == plain.shape == (1, 3, 22, 19)
    torch.testing.assert_close(out, plain, atol=1e-4 * plain.abs().max().item(), rtol=0)
    grid, _ = make_query_grid((22, 19))
    assert torch.equal(fast(phi, grid, cell), out)  # axes given, or split from the dense grid: the same


def test_fast_path_takes_one_cell_per_image_and_regular_grids():
    clif = CLIF(CLIFConfig(field_channels=4, hidden=8)).eval()
    phi = torch.randn(1, 4, 3, 3)
    coord, cell = make_query((6, 6))
    fast = FastCLIF(clif)
    constant = cell.view(1, 1, 1, 2).expand(1, 6, 6, 2)
    with torch.no_grad():
        torch.testing.assert_close(fast(phi, coord, cell), clif(phi, coord, constant), atol=1e-5, rtol=1e-5)
    varying = constant.clone()
    varying[0, 2, 2] *= 2
    with pytest.raises(ValueError, match="one cell per image"):
        fast(phi, coord, varying)  # per-pixel cells: the CLIF module renders them
    with pytest.raises(ValueError, match="regular query grids"):
        fast(phi, torch.rand(1, 6, 6, 2) * 2 - 1, cell)


def test_fast_path_holds_the_weights_it_was_prepared_with():
    clif = CLIF(CLIFConfig(field_channels=4, hidden=32)).eval()
    phi = torch.randn(1, 4, 4, 4)
    coord, cell = make_query((12, 12))
    before = FastCLIF(clif)(phi, coord, cell)
    with torch.no_grad():
        clif.blocks[0].conv1.weight.mul_(2)  # in place, as an optimiser step would
        expected = clif(phi, coord, cell)
    after = FastCLIF(clif)(phi, coord, cell)  # prepared again: Winograd weights of the new weights
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)


def test_fast_path_leaves_the_thread_count_and_computes_no_gradients():
    threads = torch.get_num_threads()
    clif = CLIF(CLIFConfig(field_channels=4, hidden=32))  # train mode, weights require grad
    phi = torch.randn(1, 4, 8, 8, requires_grad=True)
    coord, cell = make_query((384, 384))  # 384^2 x 32 values: the banded stages use the workers
    out = FastCLIF(clif, workers=2)(phi, coord, cell)
    assert not out.requires_grad and torch.get_num_threads() == threads
    with torch.no_grad():
        torch.testing.assert_close(out, clif(phi, coord, cell), atol=1e-5, rtol=1e-5)
