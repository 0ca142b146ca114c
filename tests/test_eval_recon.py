"""Reconstruction evaluation (infd.eval.recon), the one evaluation data config and the photo reader
(infd.eval.photos), and the reconstruction table, on tiny random autoencoders and synthetic photos."""
import ast
import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_testing import ROOT, photo, png_bytes, tiny_autoencoder, write_photo_shards
from PIL import Image

from infd import metrics
from infd.data import DataConfig, DecodeConfig, PatchConfig
from infd.data.shards import ShardWriter
from infd.eval.photos import eval_data_config, first_images, load_photos, load_whole_images, photo_square
from infd.eval.recon import evaluate_autoencoder, reconstruction_grid, render_full
from infd.eval.report import format_table
from infd.rendering.sinks import quantize
from render_testing import full_render

S = 32  # configs/ae/tiny.yaml
PHOTOS = [png_bytes(photo(1, (72, 56))), png_bytes(photo(2, (60, 60)))]


def jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_a_truncated_photo_or_shard_is_skipped_and_the_rest_kept(tmp_path, caplog):
    """Evaluation skips what the training loader skips: a photo that does not decode, and the unreadable
    tail of a shard (its complete photos before it are kept)."""
    good = [png_bytes(photo(i, (24, 24))) for i in range(3)]
    writer = ShardWriter(str(tmp_path / "a-%02d.tar"))
    writer.write("ok0", {"png": good[0]})
    writer.write("cut", {"png": good[1][: len(good[1]) // 2]})  # a truncated photo
    writer.write("ok1", {"png": good[1]})
    writer.close()
    whole = ShardWriter(str(tmp_path / "b-%02d.tar"))
    whole.write("ok2", {"png": good[2]})
    whole.write("big", {"png": png_bytes(photo(9, (64, 64)))})
    path = Path(whole.close()[0])
    with tarfile.open(path) as tar:
        cut = tar.getmembers()[-1].offset_data + 100
    path.write_bytes(path.read_bytes()[:cut])  # cut inside the second member
    config = eval_data_config([str(tmp_path / "a-00.tar"), str(path)], S)
    assert first_images(config, None) == good
    assert "skipped photo cut" in caplog.text and "skipped the rest of" in caplog.text


def test_the_evaluation_data_config_decodes_exactly_in_one_ordered_pass():
    config = eval_data_config("val-{0..1}.tar", 48)
    assert config.urls == "val-{0..1}.tar" and config.mode == "whole"
    assert not config.resampled and not config.shard_shuffle and config.shuffle_buffer == 0
    patches = config.patches
    assert patches.encoder_size == 48 and not patches.fast_decode
    assert (patches.square, patches.kernel, patches.max_size, patches.flip) == ("center_crop", "lanczos", None, False)
    assert config.decode == DecodeConfig()
    limits = DecodeConfig(max_pixels=1000, background="black")
    assert eval_data_config("x.tar", 48, limits).decode == limits


def test_first_images_read_in_shard_order_and_pass_over_samples_without_an_image(tmp_path):
    first, second, third, fourth = (png_bytes(photo(i, (20, 20))) for i in range(4))
    writer = ShardWriter(str(tmp_path / "mixed-%02d.tar"), max_count=3)
    writer.write("a", {"png": first})
    writer.write("notes", {"txt": b"no photo here"})
    writer.write("b", {"PNG": second})  # any case of the data layer's extensions
    writer.write("c", {"png": third, "json": b"{}"})
    writer.write("d", {"png": fourth})
    writer.close()
    urls = str(tmp_path / "mixed-{00..01}.tar")
    config = eval_data_config(urls, S)
    assert first_images(config, None) == [first, second, third, fourth]
    assert first_images(config, 2) == [first, second]
    assert load_photos(config, 3) == [first, second, third]
    empty = ShardWriter(str(tmp_path / "empty-%02d.tar"))
    empty.write("notes", {"txt": b"no photo here"})
    with pytest.raises(ValueError, match="no images found"):
        load_photos(eval_data_config(empty.close()[0], S))


def test_whole_images_are_the_photo_squares():
    config = eval_data_config("unused.tar", S)
    for size in (S, 50):
        samples = load_whole_images(config, PHOTOS, size)
        for sample, data in zip(samples, PHOTOS):
            assert sample["inp"].shape == (3, S, S) and sample["gt"].shape == (3, size, size)
            torch.testing.assert_close(sample["gt"], photo_square(data, size, config), rtol=0, atol=0)


def test_render_full_equals_a_full_render_on_the_fields_device():
    model = tiny_autoencoder()
    with torch.no_grad():
        phi = model.decode(model.encode(torch.rand(2, 3, S, S) * 2 - 1))
        full = full_render(model.renderer, phi, (45, 45)).clamp(-1, 1)
    out = render_full(model, phi, 45)
    assert out.device == phi.device and out.shape == (2, 3, 45, 45)
    torch.testing.assert_close(out, full, rtol=0, atol=1e-5)


def test_reconstruction_metrics_against_an_independent_computation():
    model = tiny_autoencoder()
    config = eval_data_config("unused.tar", S)
    table = evaluate_autoencoder(model, config, PHOTOS, sizes=(S, 64))
    assert list(table) == [S, 64]
    assert set(table[64]) == {"psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "psnr_own_bicubic", "ssim_own_bicubic",
                              "colour_error", "edge_error_ratio", "scale_consistency"}
    assert "psnr_own_bicubic" not in table[S]  # at the encoder size the own render is the render
    assert math.isinf(table[S]["psnr_bicubic"]) and table[S]["ssim_bicubic"] == pytest.approx(1.0)
    samples = load_whole_images(config, PHOTOS, 64)
    inp, gt = torch.stack([x["inp"] for x in samples]), torch.stack([x["gt"] for x in samples])
    with torch.no_grad():
        phi = model.decode(model.encode(inp))
        rec = full_render(model.renderer, phi, (64, 64)).clamp(-1, 1)
        twice = full_render(model.renderer, phi, (128, 128)).clamp(-1, 1)
        own = full_render(model.renderer, phi, (S, S)).clamp(-1, 1)
    up = F.interpolate(inp, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)
    own_up = F.interpolate(own, size=(64, 64), mode="bicubic", align_corners=False).clamp(-1, 1)

    def mean_psnr(a, b):
        return np.mean([10 * math.log10(4 / ((x.double() - y.double()) ** 2).mean().item()) for x, y in zip(a, b)])

    assert table[64]["psnr"] == pytest.approx(mean_psnr(rec, gt), abs=1e-3)
    assert table[64]["psnr_bicubic"] == pytest.approx(mean_psnr(up, gt), abs=1e-4)
    assert 0 < table[64]["psnr"] < table[64]["psnr_bicubic"]  # an untrained model is worse than bicubic
    assert table[64]["psnr_own_bicubic"] == pytest.approx(mean_psnr(own_up, gt), abs=1e-3)
    cast = [(255 / 2 * (x.double().mean((1, 2)) - y.double().mean((1, 2)))).abs().mean().item() for x, y in zip(rec, gt)]
    assert table[64]["colour_error"] == pytest.approx(np.mean(cast), abs=1e-3) and table[64]["colour_error"] > 0
    assert table[64]["scale_consistency"] == pytest.approx(mean_psnr(metrics.downsample(twice, (64, 64)), rec),
                                                           abs=1e-3)
    cell = 64 // phi.shape[-1]  # the edge ring is one field cell wide
    err = (rec - gt).abs().mean(1)
    ring = torch.cat([err[:, :cell].flatten(1), err[:, -cell:].flatten(1), err[:, cell:-cell, :cell].flatten(1),
                      err[:, cell:-cell, -cell:].flatten(1)], 1).mean(1)
    inside = err[:, 4 * cell:-4 * cell, 4 * cell:-4 * cell].flatten(1).mean(1)
    assert table[64]["edge_error_ratio"] == pytest.approx((ring / inside).mean().item(), rel=1e-4)


def test_lpips_columns_only_with_a_network():
    from infd.losses import LPIPS

    table = evaluate_autoencoder(tiny_autoencoder(), eval_data_config("unused.tar", S), PHOTOS[:1], sizes=(S,),
                                 lpips_net=LPIPS().eval())  # random weights: enough to check the wiring
    assert {"lpips", "lpips_bicubic"} <= set(table[S]) and table[S]["lpips_bicubic"] == pytest.approx(0, abs=1e-6)


def test_the_reconstruction_table():
    table = {32: {"psnr": 21.834, "psnr_bicubic": float("inf"), "ssim": 0.72541, "ssim_bicubic": 1.0,
                  "lpips": 0.42744, "lpips_bicubic": 0.0, "scale_consistency": 38.891},
             64: {"psnr": 21.5, "psnr_bicubic": 34.149, "ssim": 0.6878, "ssim_bicubic": 0.93392,
                  "lpips": 0.51021, "lpips_bicubic": 0.13411, "scale_consistency": 40.78}}
    assert format_table(table).splitlines() == [
        "| size | psnr | psnr_bicubic | ssim | ssim_bicubic | lpips | lpips_bicubic | scale_consistency |",
        "|---|---|---|---|---|---|---|---|",
        "| 32 | 21.83 | inf | 0.7254 | 1.0000 | 0.4274 | 0.0000 | 38.89 |",
        "| 64 | 21.50 | 34.15 | 0.6878 | 0.9339 | 0.5102 | 0.1341 | 40.78 |"]
    no_lpips = {16: {"psnr": 20.0, "psnr_bicubic": 30.0, "ssim": 0.5, "ssim_bicubic": 0.9, "scale_consistency": 40.0}}
    assert format_table(no_lpips).splitlines()[0] == "| size | psnr | psnr_bicubic | ssim | ssim_bicubic | scale_consistency |"


def test_reconstruction_grid_layout(tmp_path):
    model = tiny_autoencoder()
    config = eval_data_config("unused.tar", S)
    path = reconstruction_grid(model, config, PHOTOS, (16, 32), tmp_path / "images" / "grid.png")
    grid = np.asarray(Image.open(path).convert("RGB"))
    gap = 4
    assert grid.shape == (2 * 32 + gap, 2 * 16 + 2 * 32 + 3 * gap, 3)  # gaps only between images
    for row, data in enumerate(PHOTOS):
        y = row * (32 + gap)
        expected = quantize(photo_square(data, 32, config)[None])[0]
        assert np.array_equal(grid[y:y + 32, 2 * 16 + 2 * gap:2 * 16 + 2 * gap + 32], expected)  # gt at 32
        rec = grid[y:y + 16, 16 + gap:2 * 16 + gap]  # the reconstruction at 16
        with torch.no_grad():
            inp = load_whole_images(config, [data], 16)[0]["inp"][None]
            want = quantize(render_full(model, model.decode(model.encode(inp)), 16))[0]
        assert np.abs(rec.astype(int) - want.astype(int)).max() <= 1
        assert (grid[y + 16:y + 32, :16] == 255).all()  # below the smaller size: the white canvas


def test_reconstruction_grid_reads_photos_as_the_evaluation_does(tmp_path):
    """The training loop passes its own ``val_data`` (fast decoding by default): the grid is the same as
    with the evaluation data config, whose numbers tools/eval.py reports."""
    photos = [jpeg_bytes(photo(3, (256, 200)))]  # large enough for the reduced JPEG decode and box pre-reduction
    val_data = DataConfig(urls="val.tar", mode="whole", resampled=False, patches=PatchConfig(encoder_size=S))
    assert val_data.patches.fast_decode
    fast = load_whole_images(val_data, photos, 64)[0]["gt"]
    exact = load_whole_images(eval_data_config("val.tar", S), photos, 64)[0]["gt"]
    assert not torch.equal(fast, exact)  # so the check below can tell the two apart
    model = tiny_autoencoder()
    a = reconstruction_grid(model, val_data, photos, (32, 64), tmp_path / "a.png")
    b = reconstruction_grid(model, eval_data_config("val.tar", S), photos, (32, 64), tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_photos_from_shards_on_disk(tmp_path):
    urls = write_photo_shards(tmp_path, "val", [100, 101, 102])
    config = eval_data_config(urls, S)
    photos = load_photos(config, None)
    assert len(photos) == 3 and photos[0] == png_bytes(photo(100, (72, 56)))


def test_image_extensions_are_defined_once():
    """Only the data layer lists the image file extensions (infd.data.decode.IMAGE_EXTENSIONS)."""
    owners = []
    for folder in ("infd", "data", "renderers", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                    values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                    if {"jpg", "jpeg", "png"} <= values:
                        owners.append(str(path.relative_to(ROOT)))
    assert owners == ["data/decode.py"]
