"""The multiscale patch sampler: documented shapes and ranges, and gt is exactly the crop the
renderer must produce from (coord, cell)."""
import io
import random
import statistics

import numpy as np
import pytest
import torch
from PIL import Image

from infd.data.decode import DecodeConfig, decode_image
from infd.data.patches import PatchConfig, SkipSample, crop_position, sample_patch, sample_scale, sample_whole
from infd.data.resize import resize_region
from infd.config import ConfigError, from_dict
from infd.renderers.coords import Region, make_cell, make_coord

DECODE = DecodeConfig()


def encode(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def texture(h: int, w: int, seed: int = 0, blob: int = 8, grain: int = 20) -> np.ndarray:
    """Colour blobs of about ``blob`` pixels plus per-pixel noise: misaligned crops would not match."""
    rs = np.random.RandomState(seed)
    coarse = rs.randint(0, 256, (max(2, h // blob), max(2, w // blob), 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)).astype(int)
    return np.clip(base + rs.randint(-grain, grain + 1, (h, w, 3)), 0, 255).astype(np.uint8)


def to_255(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) * 127.5


def check_contract(sample: dict, config: PatchConfig):
    S, P, r = config.encoder_size, config.patch_size, sample["size"]
    assert sample["inp"].shape == (3, S, S) and sample["inp"].dtype == torch.float32
    assert sample["gt"].shape == (3, P, P) and sample["gt"].dtype == torch.float32
    for key in ("inp", "gt"):
        assert sample[key].min() >= -1 and sample[key].max() <= 1
    top, left = sample["crop"].tolist()
    assert 0 <= top <= r - P and 0 <= left <= r - P
    assert sample["coord"].shape == (P, P, 2) and sample["coord"].dtype == torch.float32
    assert torch.equal(sample["coord"], make_coord((r, r), Region(top, left, P, P)))
    assert torch.equal(sample["cell"], torch.tensor([2 / r, 2 / r], dtype=torch.float32))


@pytest.mark.parametrize("square", ["center_crop", "pad"])
@pytest.mark.parametrize("flip", [False, True])
def test_gt_is_exactly_the_crop_of_the_resized_image(square, flip):
    array = texture(70, 96)
    data = encode(array)
    config = PatchConfig(encoder_size=24, patch_size=16, max_size=None, square=square, flip=flip,
                         fast_decode=False)
    if square == "pad":
        canvas = np.zeros((96, 96, 3), dtype=np.uint8)
        canvas[13:83] = array
        square_image = canvas
    else:
        square_image = array[:, 13:83]
    rng = random.Random(0)
    flipped = 0
    for _ in range(8):
        sample = sample_patch(data, config, DECODE, rng)
        check_contract(sample, config)
        r, (top, left) = sample["size"], sample["crop"].tolist()
        assert 16 <= r <= square_image.shape[0]
        full = resize_region(square_image, (r, r))  # the r x r image the renderer must reproduce
        expected_inp = torch.from_numpy(np.asarray(Image.fromarray(square_image).resize(
            (24, 24), Image.Resampling.LANCZOS)).copy()).permute(2, 0, 1).float()
        inp = to_255(sample["inp"])
        if flip and not torch.allclose(inp, expected_inp, atol=1e-3):
            full, expected_inp = full.flip(-1), expected_inp.flip(-1)
            flipped += 1
        assert torch.equal(sample["gt"], full[:, top:top + 16, left:left + 16] / 127.5 - 1)
        torch.testing.assert_close(inp, expected_inp, atol=1e-3, rtol=0)
    assert (flipped > 0) == flip


def test_random_square_crop_is_one_of_the_windows():
    array = texture(40, 60, seed=3)
    config = PatchConfig(encoder_size=8, patch_size=8, max_size=None, square="random_crop", fast_decode=False)
    offsets = set()
    for seed in range(6):
        sample = sample_patch(encode(array), config, DECODE, random.Random(seed))
        r, (top, left) = sample["size"], sample["crop"].tolist()
        matches = [x for x in range(21)
                   if torch.equal(sample["gt"], resize_region(array[:, x:x + 40], (r, r))[:, top:top + 8, left:left + 8]
                                  / 127.5 - 1)]
        assert len(matches) >= 1
        offsets.add(matches[0])
    assert len(offsets) > 1


@pytest.mark.parametrize("square", ["center_crop", "pad"])
@pytest.mark.parametrize("max_size", [70, 140])  # JPEG decoded at 1/8 and 1/4 scale
def test_fast_path_agrees_with_exact_decode(square, max_size):
    # detail at the scale of the patches (not at the native pixel), like a downscaled photo;
    # the square's offset (100 px) is no multiple of 8: the fast path must map it fractionally
    array = texture(600, 800, seed=5, blob=48, grain=2)
    data = encode(array, "JPEG", quality=95)
    exact = PatchConfig(encoder_size=32, patch_size=32, max_size=max_size, square=square, fast_decode=False)
    fast = PatchConfig(encoder_size=32, patch_size=32, max_size=max_size, square=square, fast_decode=True)
    for seed in range(3):
        a = sample_patch(data, exact, DECODE, random.Random(seed))
        b = sample_patch(data, fast, DECODE, random.Random(seed))
        assert a["size"] == b["size"] and torch.equal(a["crop"], b["crop"])
        assert not torch.equal(a["gt"], b["gt"])  # the reduced decode really ran
        # same pixels: far closer to the exact crop than the exact crop is to itself shifted by 1
        one_pixel = (a["gt"][:, :, 1:] - a["gt"][:, :, :-1]).abs().mean()
        assert (a["gt"] - b["gt"]).abs().mean() < min(0.03, one_pixel / 3)
        assert (a["inp"] - b["inp"]).abs().mean() < 0.02


def test_small_images_upsample_or_skip():
    data = encode(np.full((1, 1, 3), (10, 200, 30), dtype=np.uint8))
    config = PatchConfig(encoder_size=16, patch_size=8)
    sample = sample_patch(data, config, DECODE, random.Random(0))
    check_contract(sample, config)
    assert sample["size"] == 8
    expected = torch.tensor([10, 200, 30], dtype=torch.float32)[:, None, None] / 127.5 - 1
    torch.testing.assert_close(sample["gt"], expected.expand(3, 8, 8), atol=1e-5, rtol=0)
    with pytest.raises(SkipSample, match="smaller than the patch"):
        sample_patch(data, PatchConfig(encoder_size=16, patch_size=8, small_images="skip"), DECODE, random.Random(0))


def test_scale_distributions_stay_in_range():
    rng = random.Random(0)
    for dist in ("uniform", "log_uniform"):
        config = PatchConfig(patch_size=64, max_size=1024, scale_dist=dist)
        draws = [sample_scale(2000, config, rng) for _ in range(2000)]
        assert min(draws) >= 64 and max(draws) <= 1024
        median = statistics.median(draws)
        if dist == "uniform":
            assert abs(median - 544) < 40
        else:
            assert abs(median - 256) < 30  # geometric mean of 64 and 1024
    assert sample_scale(300, PatchConfig(patch_size=64, max_size=None), rng) <= 300


def test_edge_clamped_crops_cover_the_edges_as_often_as_the_inside():
    r, P, draws = 64, 16, 20000

    def coverage(positions):
        rng, counts = random.Random(0), torch.zeros(r)
        for _ in range(draws):
            top = crop_position(r, P, positions, rng)
            assert 0 <= top <= r - P
            counts[top:top + P] += 1
        return counts / draws

    uniform, clamped = coverage("uniform"), coverage("edge_clamped")
    inner = slice(P, r - P)
    assert uniform[0] < 0.2 * uniform[inner].mean()  # uniform crops starve the edge: 1 of 49 positions vs 16
    assert clamped[0] > 0.9 * clamped[inner].mean() and clamped[-1] > 0.9 * clamped[inner].mean()
    assert clamped.max() < 2.1 * clamped[inner].mean()
    data = encode(texture(70, 96))
    config = PatchConfig(encoder_size=16, patch_size=8, max_size=None, crop_positions="edge_clamped")
    crops = [sample_patch(data, config, DECODE, random.Random(seed))["crop"] for seed in range(40)]
    assert any(int(c[0]) == 0 for c in crops) and any(int(c[1]) == 0 for c in crops)


def test_same_seed_same_sample():
    data = encode(texture(50, 50))
    config = PatchConfig(encoder_size=16, patch_size=8, flip=True)
    a, b = (sample_patch(data, config, DECODE, random.Random(7)) for _ in range(2))
    for key in ("inp", "gt", "coord", "cell", "crop"):
        assert torch.equal(a[key], b[key])


def test_whole_image_mode():
    array = texture(30, 44)
    sample = sample_whole(encode(array), PatchConfig(encoder_size=16, patch_size=8), DECODE)
    assert sample["inp"].shape == (3, 16, 16) and sample["gt"].shape == (3, 30, 30) and sample["size"] == 30
    torch.testing.assert_close(to_255(sample["gt"]), torch.from_numpy(array[:, 7:37].copy()).permute(2, 0, 1).float(),
                               atol=1e-3, rtol=0)
    assert torch.equal(sample["cell"], make_cell((30, 30)))
    sized = sample_whole(encode(array), PatchConfig(encoder_size=16, patch_size=8, whole_size=64), DECODE)
    assert sized["gt"].shape == (3, 64, 64) and sized["size"] == 64


def test_decoded_image_is_the_reference():
    # the sampler's square is the decoder's output (EXIF-rotated, RGB), not the raw array
    array = texture(20, 36)
    exif = Image.Exif()
    exif[0x0112] = 8
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", exif=exif)
    decoded = np.asarray(decode_image(buf.getvalue()))
    assert decoded.shape == (36, 20, 3)
    config = PatchConfig(encoder_size=8, patch_size=8, max_size=None, fast_decode=False)
    sample = sample_patch(buf.getvalue(), config, DECODE, random.Random(2))
    r, (top, left) = sample["size"], sample["crop"].tolist()
    expected = resize_region(decoded[8:28], (r, r))[:, top:top + 8, left:left + 8] / 127.5 - 1
    assert torch.equal(sample["gt"], expected)


def test_config_validation():
    with pytest.raises(ConfigError, match="max_size 100 is below patch_size 256"):
        from_dict(PatchConfig, {"max_size": 100})
    with pytest.raises(ConfigError, match="scale_dist"):
        from_dict(PatchConfig, {"scale_dist": "gaussian"})
    with pytest.raises(ConfigError, match="crop_positions"):
        from_dict(PatchConfig, {"crop_positions": "edges"})


def test_context_widens_the_query_grid_around_the_same_patch():
    data = encode(texture(70, 96))
    plain, wide = (PatchConfig(encoder_size=24, patch_size=16, max_size=None, fast_decode=False, context=c)
                   for c in (None, 6))
    a, b = (sample_patch(data, config, DECODE, random.Random(3)) for config in (plain, wide))
    assert torch.equal(a["gt"], b["gt"]) and b["coord"].shape == (28, 28, 2)
    assert torch.equal(b["coord"][6:-6, 6:-6], a["coord"])  # the patch's own queries are unchanged
    r, (top, left) = b["size"], b["crop"].tolist()
    ys = b["coord"][:, 0, 0]
    for k, row in enumerate(range(top - 6, top + 22)):  # context rows past the image edge mirror inside ones
        mirrored = -1 - row if row < 0 else (2 * r - 1 - row if row >= r else row)
        assert ys[k].item() == pytest.approx(-1 + (2 * mirrored + 1) / r, abs=1e-6)
    with pytest.raises(ValueError, match="context"):
        PatchConfig(context=-1)


def test_decode_cache_gives_bitwise_the_same_samples_and_stays_in_budget():
    """Patches drawn through a DecodeCache equal those decoded every time (JPEG drafts included), repeat
    draws of a photo hit the cache, and least recently used entries leave past the byte budget."""
    from infd.data.decode import DecodeCache

    photos = [encode(texture(300, 400, seed=i), "JPEG", quality=90) for i in range(3)]
    config = PatchConfig(encoder_size=32, patch_size=16, max_size=None)
    cache = DecodeCache(max_mb=400 * 300 * 3 * 2.5 / 2**20)  # room for two full-size decodes, not three
    plain_rng, cached_rng = random.Random(3), random.Random(3)
    for i in range(24):
        data = photos[i % 3]
        plain = sample_patch(data, config, DECODE, plain_rng)
        cached = sample_patch(data, config, DECODE, cached_rng, cache)
        assert plain["size"] == cached["size"]
        for key in ("inp", "gt", "coord"):
            assert torch.equal(plain[key], cached[key]), (i, key)
        assert cache.bytes <= cache.max_bytes
    assert cache.hits > 0 and cache.misses > 0 and cache.hits + cache.misses == 24


def test_decode_cache_mb_must_be_a_non_negative_number():
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match="cache_mb"):
            DecodeConfig(cache_mb=bad)
