"""The super-resolution protocol on tiny random autoencoders and synthetic photos."""
import dataclasses
import io

import kornia.metrics
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_testing import photo, png_bytes, tiny_autoencoder
from PIL import Image

from infd.eval.photos import eval_data_config
from infd.eval.sr import check_same_input_size, evaluate_sr, sr_pair, sr_size, super_resolve
from infd.losses import LPIPS
from infd.models.autoencoder import NeuralFieldAutoencoder
from render_testing import full_render

S = 32  # configs/ae/tiny.yaml
PHOTOS = [png_bytes(photo(1, (72, 56))), png_bytes(photo(2, (60, 60)))]  # even margins: no rounding in the crop


def independent_bicubic_scores(data: bytes, G: int, lpips_net) -> dict[str, float]:
    """The protocol written out with Pillow, torch and numpy directly (no infd code)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    n = min(img.size)
    left, top = (img.width - n) // 2, (img.height - n) // 2
    gt = np.asarray(img.crop((left, top, left + n, top + n)).resize((G, G), Image.Resampling.LANCZOS))
    gt = torch.from_numpy(gt.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    inp = F.interpolate(gt, size=(S, S), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
    up = F.interpolate(inp, size=(G, G), mode="bicubic", align_corners=False).clamp(-1, 1)
    err = ((up.double() - gt.double()) / 2).pow(2).mean().item()
    ssim = kornia.metrics.ssim((up + 1) / 2, (gt + 1) / 2, 11, max_val=1.0, padding="valid").mean().item()
    with torch.no_grad():
        lpips = lpips_net(up, gt).item()
    return {"psnr": 10 * np.log10(1 / err), "ssim": ssim, "lpips": lpips}


def test_sizes_and_pairs():
    assert sr_size(2.7, 128) == 346 and sr_size(2, 32) == 64 and sr_size(3.5, 32) == 112
    with pytest.raises(ValueError, match="> 1"):
        sr_size(1.0, 32)
    config = eval_data_config("unused.tar", S)
    inp, gt = sr_pair(PHOTOS[0], 2.7, S, config)
    assert inp.shape == (3, S, S) and gt.shape == (3, 86, 86)
    assert -1 <= gt.min() and gt.max() <= 1 and -1 <= inp.min() and inp.max() <= 1


def test_bicubic_baseline_equals_independent_computation():
    lpips_net = LPIPS().eval()  # random weights: enough to check the wiring
    result = evaluate_sr({"tiny": tiny_autoencoder()}, PHOTOS, (2, 2.7), eval_data_config("unused.tar", S),
                         lpips_net, batch=1)
    assert list(result) == [2, 2.7] and [r["size"] for r in result.values()] == [64, 86]
    for scale, row in result.items():
        expected = [independent_bicubic_scores(p, row["size"], lpips_net) for p in PHOTOS]
        got = row["methods"]["bicubic"]
        assert got["psnr"] == pytest.approx(np.mean([e["psnr"] for e in expected]), abs=1e-4)
        assert got["ssim"] == pytest.approx(np.mean([e["ssim"] for e in expected]), abs=1e-5)
        assert got["lpips"] == pytest.approx(np.mean([e["lpips"] for e in expected]), abs=1e-5)
        model = row["methods"]["tiny"]
        assert 0 < model["psnr"] < got["psnr"]  # an untrained model is worse than bicubic
        assert set(model) == {"psnr", "ssim", "lpips"}


def test_batching_does_not_change_the_numbers():
    config = eval_data_config("unused.tar", S)
    one = evaluate_sr({"tiny": tiny_autoencoder()}, PHOTOS, (2,), config, batch=1)
    two = evaluate_sr({"tiny": tiny_autoencoder()}, PHOTOS, (2,), config, batch=2)
    for method in ("tiny", "bicubic"):
        for metric in ("psnr", "ssim"):
            assert one[2]["methods"][method][metric] == pytest.approx(two[2]["methods"][method][metric], abs=1e-5)


def test_super_resolve_equals_a_full_render():
    model = tiny_autoencoder()
    inp = torch.rand(2, 3, S, S) * 2 - 1
    out = super_resolve(model, inp, 86)
    assert out.shape == (2, 3, 86, 86)
    with torch.no_grad():
        phi = model.decode(model.encode(inp))
        full = full_render(model.renderer, phi, (86, 86)).clamp(-1, 1)
    torch.testing.assert_close(out, full, rtol=0, atol=1e-5)


def test_compared_models_keep_their_order_and_need_one_input_size():
    clif, liif = tiny_autoencoder(), tiny_autoencoder("liif", seed=1)
    result = evaluate_sr({"clif": clif, "liif": liif}, PHOTOS[:1], (2,), eval_data_config("unused.tar", S))
    methods = result[2]["methods"]
    assert list(methods) == ["clif", "liif", "bicubic"] and "lpips" not in methods["clif"]
    assert methods["clif"]["psnr"] != methods["liif"]["psnr"]
    bigger = NeuralFieldAutoencoder(dataclasses.replace(clif.config, input_size=64))
    with pytest.raises(ValueError, match="big takes 64x64, clif takes 32x32"):
        check_same_input_size({"clif": clif, "big": bigger})
