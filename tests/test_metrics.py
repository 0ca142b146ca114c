"""PSNR, SSIM, LPIPS metric wrapper and scale consistency on images with known answers."""
import math

import pytest
import torch

from infd.losses import LPIPS
from infd.metrics import lpips, psnr, scale_consistency, ssim
from infd import metrics
from infd.renderers.coords import make_coord


def test_psnr_identical_is_inf():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.isinf(psnr(x, x)).all()


def test_psnr_constant_offset_known_values():
    x = torch.rand(2, 3, 8, 8) * 0.5
    # On [0, 1]: an offset of 0.1 gives MSE 0.01 -> 20 dB; 0.01 -> 40 dB.
    offsets = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    torch.testing.assert_close(psnr(x + offsets, x, value_range=(0, 1)), torch.tensor([20.0, 40.0]))
    # The same images in [-1, 1]: twice the offset, same PSNR.
    torch.testing.assert_close(psnr(2 * (x + offsets) - 1, 2 * x - 1), torch.tensor([20.0, 40.0]))


def test_psnr_matches_definition():
    x, y = torch.rand(3, 3, 5, 7), torch.rand(3, 3, 5, 7)
    mse = ((x - y) ** 2).flatten(1).mean(dim=1)
    torch.testing.assert_close(psnr(x, y, value_range=(0, 1)), 10 * torch.log10(1 / mse))
    with pytest.raises(ValueError, match="value_range"):
        psnr(x, y, value_range=(1, 0))
    with pytest.raises(ValueError, match="one shape"):
        psnr(x, y[:, :, :4])


def test_ssim_identical_is_one():
    x = torch.rand(2, 3, 24, 24) * 2 - 1
    torch.testing.assert_close(ssim(x, x), torch.ones(2), rtol=0, atol=1e-6)


def test_ssim_of_constant_images_known_value():
    # Flat images a and b: means a, b, no variance -> SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = 0.01^2.
    a, b = 0.3, 0.7
    c1 = 0.01 ** 2
    got = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b), value_range=(0, 1))
    torch.testing.assert_close(got, torch.tensor([(2 * a * b + c1) / (a * a + b * b + c1)]), rtol=1e-4, atol=0)


def test_ssim_falls_with_noise_and_is_symmetric():
    x = torch.rand(1, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    values = [ssim((x + s * noise).clamp(0, 1), x, value_range=(0, 1)).item() for s in (0.02, 0.1, 0.3)]
    assert 1 > values[0] > values[1] > values[2]
    y = (x + 0.1 * noise).clamp(0, 1)
    torch.testing.assert_close(ssim(x, y, value_range=(0, 1)), ssim(y, x, value_range=(0, 1)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x[..., :8, :8], x[..., :8, :8])


def test_lpips_metric_maps_value_range():
    net = LPIPS()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    got = lpips(x, y, net, value_range=(0, 1))
    with torch.no_grad():
        expected = net(2 * x - 1, 2 * y - 1)
    torch.testing.assert_close(got, expected)
    assert not got.requires_grad
    assert (lpips(x, x, net, value_range=(0, 1)) == 0).all()


def _field_render(fn):
    """A 'renderer' that samples fn(y, x) at the pixel centres of any size: (1, 3, H, W)."""
    def render(size):
        coord = make_coord(size, dtype=torch.float64)
        return fn(coord[..., 0], coord[..., 1]).unsqueeze(0).float()
    return render


def test_scale_consistency_of_linear_field_is_exact_with_area():
    # Each pixel centre at r is the mean of the 4 sub-pixel centres at 2r: exact for a linear field.
    render = _field_render(lambda y, x: torch.stack([0.5 * y, 0.3 * x - 0.2 * y, 0.1 + 0.4 * x]))
    assert scale_consistency(render, 16, mode="area").item() > 100


def test_scale_consistency_of_smooth_field_is_high():
    render = _field_render(lambda y, x: torch.stack([torch.sin(2 * y), torch.cos(3 * x), 0.5 * torch.sin(x + y)]))
    assert scale_consistency(render, (24, 32)).item() > 35


def test_scale_consistency_of_aliased_render_known_value():
    # A one-pixel checkerboard at every resolution: 2r averaged to r gives flat grey (0) against +-1,
    # i.e. an error of 0.5 on [0, 1] everywhere -> PSNR = 10 log10(1 / 0.25) = 6.02 dB.
    def render(size):
        i = torch.arange(size[0]).view(-1, 1) + torch.arange(size[1]).view(1, -1)
        return (1 - 2 * (i % 2)).float().expand(1, 3, *size)
    torch.testing.assert_close(scale_consistency(render, 8, mode="area"), torch.tensor([10 * math.log10(4)]))


def test_scale_consistency_checks_render_size():
    with pytest.raises(ValueError, match="render_fn returned"):
        scale_consistency(lambda size: torch.zeros(1, 3, 4, 4), 8)


def test_edge_error_ratio_sees_a_frame_and_not_uniform_noise():
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    noisy = gt + 0.1 * torch.randn(gt.shape, generator=gen)
    assert metrics.edge_error_ratio(noisy, gt, 4).tolist() == pytest.approx([1.0, 1.0], abs=0.1)
    framed = noisy.clone()
    framed[..., :4, :] += 0.3  # a bright top row of cells
    ratio = metrics.edge_error_ratio(framed, gt, 4)
    assert bool((ratio > 1.5).all())
    with pytest.raises(ValueError, match="no inside"):
        metrics.edge_error_ratio(gt[..., :32, :32], gt[..., :32, :32], 4)
