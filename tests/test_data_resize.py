"""The window resize: a crop equals the crop of the full resize, bit for bit; it is a real Lanczos."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from infd.data.resize import axis_weights, resize_region
from infd.renderers.coords import Region


def smooth(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    field = 127 + 100 * np.sin(xx / 23.0) * np.cos(yy / 17.0)
    return np.repeat(field[..., None], 3, axis=2).astype(np.uint8)


@pytest.mark.parametrize("kernel", ["lanczos", "bicubic"])
def test_window_equals_crop_of_full_resize(kernel):
    rng = random.Random(1)
    for trial in range(25):
        H, W = rng.randint(1, 90), rng.randint(1, 90)
        src = np.random.RandomState(trial).randint(0, 256, (H, W, 3), dtype=np.uint8)
        R_h, R_w = rng.randint(1, 160), rng.randint(1, 160)  # down- and upscaling
        h, w = rng.randint(1, R_h), rng.randint(1, R_w)
        top, left = rng.randint(0, R_h - h), rng.randint(0, R_w - w)
        full = resize_region(src, (R_h, R_w), kernel=kernel)
        window = resize_region(Image.fromarray(src), (R_h, R_w), Region(top, left, h, w), kernel=kernel)
        assert torch.equal(window, full[:, top:top + h, left:left + w]), (H, W, R_h, R_w, top, left)


def test_box_selects_a_sub_image():
    src = np.random.RandomState(0).randint(0, 256, (50, 70, 3), dtype=np.uint8)
    box = (10, 5, 50, 45)  # left, top, right, bottom
    expected = resize_region(src[5:45, 10:50], (30, 30))
    assert torch.equal(resize_region(Image.fromarray(src), (30, 30), box=box), expected)


@pytest.mark.parametrize("size", [(57, 83), (160, 200), (300, 410)])
def test_matches_pillow_on_smooth_images(size):
    src = smooth(160, 200)
    ours = resize_region(src, size).permute(1, 2, 0).numpy()
    pil = np.asarray(Image.fromarray(src).resize(size[::-1], Image.Resampling.LANCZOS)).astype(np.float32)
    assert np.abs(ours - pil).max() <= 1.5  # Pillow rounds to 8 bits between its passes
    assert np.abs(ours - pil).mean() <= 0.5


def test_identity_and_constant():
    src = np.random.RandomState(0).randint(0, 256, (12, 9, 3), dtype=np.uint8)
    out = resize_region(src, (12, 9))
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), src, atol=1e-4)
    flat = np.full((31, 17, 3), 77, dtype=np.uint8)
    torch.testing.assert_close(resize_region(flat, (5, 40)), torch.full((3, 5, 40), 77.0), atol=1e-4, rtol=0)


def test_axis_weights_are_normalised_and_antialiased():
    index, weight = axis_weights(100, 10)
    torch.testing.assert_close(weight.sum(1), torch.ones(10), atol=1e-6, rtol=0)
    assert index.shape[1] == 2 * 30 + 1  # Lanczos-3 stretched by the scale 10
    assert int(index.min()) >= 0 and int(index.max()) <= 99
    with pytest.raises(ValueError, match="unknown resize kernel"):
        axis_weights(10, 5, "nearest")
