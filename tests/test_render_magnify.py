"""Rendering past the renderer's native magnification: exact tiling and windows at every magnification,
an independent dense-matrix reference, continuity of a ramp, and the magnification record of checkpoints."""
import pytest
import torch

from render_testing import full_render
from infd.checkpoint import load_model, save_model
from infd.config import from_dict, load_config
from infd.data.resize import axis_weights
from infd.models.autoencoder import DEFAULT_MAX_MAGNIFICATION, AutoencoderConfig, NeuralFieldAutoencoder
from infd.rendering.engine import render
from infd.rendering.magnify import native_size
from infd.renderers import CLIF, CLIFConfig
from infd.renderers.coords import Region


def clif(max_magnification, lookup="nearest"):
    renderer = CLIF(CLIFConfig(field_channels=8, hidden=16, num_blocks=2, lookup=lookup)).eval()
    renderer.max_magnification = max_magnification
    return renderer


def assert_same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def dense_reference(renderer, phi, size):
    """The native-size full render, resized by dense bicubic matrices: ``Wy @ img @ Wx^T``."""
    base = native_size(size, tuple(phi.shape[-2:]), renderer.max_magnification)
    img = full_render(renderer, phi, base).double()  # (B, 3, h, w)
    mats = []
    for n_in, n_out in zip(base, size):
        index, weight = axis_weights(n_in, n_out, "bicubic")
        dense = torch.zeros(n_out, n_in, dtype=torch.float64)
        dense.scatter_add_(1, index, weight.double())
        mats.append(dense)
    return torch.einsum("oh,bchw,pw->bcop", mats[0], img, mats[1]).float()


def test_native_size_caps_each_axis_at_the_magnification():
    assert native_size((64, 64), (8, 8), 4.0) == (32, 32)
    assert native_size((20, 100), (8, 8), 4.0) == (20, 32)  # the short side stays native
    assert native_size((64, 64), (8, 8), None) == (64, 64)


@pytest.mark.parametrize("size, tile", [((21, 19), 5),      # below the limit: native
                                        ((32, 40), 7),      # at it
                                        ((97, 300), 16),    # far above it, non-dividing tiles
                                        ((1024, 512), 100)])
@pytest.mark.parametrize("lookup", ["nearest", "bilinear"])
def test_tiled_equals_full_and_the_dense_reference_at_every_magnification(size, tile, lookup):
    renderer, phi = clif(4.0, lookup), torch.randn(2, 8, 8, 10)
    full = render(renderer, phi, size, tile=4096)
    assert_same(render(renderer, phi, size, tile=tile), full)
    assert_same(full, dense_reference(renderer, phi, size))


@pytest.mark.parametrize("region", [Region(0, 0, 9, 11), Region(4000, 10, 37, 64), Region(8192 - 5, 8192 - 30, 5, 30)])
@pytest.mark.parametrize("lookup", ["nearest", "bilinear"])
def test_window_of_a_huge_image_equals_the_same_pixels_of_the_reference(region, lookup):
    renderer, phi = clif(2.0, lookup), torch.randn(1, 8, 6, 5)
    size = (8192, 8192)  # 1365x magnification: the reference is the native 12 x 10 render resized
    window = render(renderer, phi, size, region, tile=16)
    rows, cols = region.slices()
    reference = dense_reference(renderer, phi, size)[:, :, rows, cols]
    assert_same(window, reference)


class Nearest(torch.nn.Module):
    """A stand-in renderer that returns the nearest field vector's first 3 channels (piecewise constant)."""

    radius = 0

    def forward(self, phi, coord, cell):
        coord = coord.dense() if hasattr(coord, "dense") else coord
        h, w = phi.shape[-2:]
        iy = ((coord[..., 0] + 1) / 2 * h).floor().long().clamp(0, h - 1)  # (B, H, W)
        ix = ((coord[..., 1] + 1) / 2 * w).floor().long().clamp(0, w - 1)
        b = torch.arange(phi.shape[0])[:, None, None]
        return phi[:, :3][b, :, iy, ix].permute(0, 3, 1, 2)


def test_a_linear_ramp_rendered_at_64x_has_no_steps():
    ramp = torch.linspace(-1, 1, 16).expand(1, 3, 16, 16).clone()  # varies along x only
    renderer = Nearest()
    steps_native = render(renderer, ramp, (16 * 64, 16 * 64), Region(0, 0, 4, 1024))[0, 0, 0].diff().abs()
    renderer.max_magnification = 1.0
    smooth = render(renderer, ramp, (16 * 64, 16 * 64), Region(0, 0, 4, 1024))[0, 0, 0].diff().abs()
    inner = smooth[64:-64]  # away from the edges, where the bicubic taps are cut
    assert steps_native.max() > 0.1 and (steps_native > 0).sum() == 15  # 15 jumps of a whole cell
    assert inner.max() < 1.5 * inner.mean() and inner.max() < 0.01  # a smooth slope: no step stands out


def test_checkpoints_record_the_magnification_and_old_ones_get_the_default(tmp_path):
    config = load_config(AutoencoderConfig, "configs/ae/tiny.yaml")
    assert NeuralFieldAutoencoder(config).renderer.max_magnification == DEFAULT_MAX_MAGNIFICATION
    model = NeuralFieldAutoencoder(from_dict(AutoencoderConfig, {**vars(config), "max_magnification": 2.5}))
    loaded = load_model(save_model(model, tmp_path / "m.safetensors"))
    assert loaded.renderer.max_magnification == 2.5
    with pytest.raises(ValueError, match="max_magnification"):
        from_dict(AutoencoderConfig, {"max_magnification": 0.5})
