"""Augmentation: inp, gt and coord stay exactly consistent; seeded; off by default changes nothing;
colour ops keep [-1, 1]; hue 360 is the identity; channel permutation permutes."""
import random

import numpy as np
import pytest
import torch

from infd.config import from_dict
from infd.data.augment import AugmentConfig, AugmentParams, apply_augment, apply_colour, apply_geometry, \
    rotate_hue, sample_params, source_region
from infd.data.decode import DecodeConfig
from infd.data.patches import PatchConfig, sample_patch, sample_scale
from infd.data.resize import resize_region
from infd.renderers.coords import Region, make_coord
from kornia.color import hsv_to_rgb, rgb_to_hsv

from test_data_patches import encode, texture

DECODE = DecodeConfig()
ALL_ON = AugmentConfig(hue_degrees=180, saturation=0.5, brightness=0.5, channel_permutation=True, rot90=True,
                       hflip=True, vflip=True)


def replay_params(config: PatchConfig, n: int, seed: int) -> AugmentParams:
    """The parameters sample_patch draws for its first sample (same order), flip folded in."""
    rng = random.Random(seed)
    r = sample_scale(n, config, rng)
    rng.randint(0, r - config.patch_size), rng.randint(0, r - config.patch_size), rng.random()
    flip = config.flip and rng.random() < 0.5
    params = sample_params(config.augment, rng)
    return AugmentParams(params.hflip != flip, params.vflip, params.k, params.hue_degrees, params.saturation,
                         params.brightness, params.permutation)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("context", [0, 3])
def test_augmented_sample_is_exactly_consistent(flip, context):
    array = texture(60, 60)
    data = encode(array)
    base = PatchConfig(encoder_size=20, patch_size=12, max_size=None, flip=flip, fast_decode=False, context=context)
    augmented = PatchConfig(**{**base.__dict__, "augment": ALL_ON})
    seen = set()
    for seed in range(12):
        plain = sample_patch(data, base, DECODE, random.Random(seed))
        sample = sample_patch(data, augmented, DECODE, random.Random(seed))
        params = replay_params(augmented, 60, seed)
        seen.add((params.hflip, params.vflip, params.k))
        r, (top, left) = sample["size"], sample["crop"].tolist()
        assert r == plain["size"] and sample["crop"].tolist() == plain["crop"].tolist()
        full = resize_region(array, (r, r)) / 127.5 - 1  # the un-augmented r x r image
        expected_gt = apply_augment(full, params)[:, top:top + 12, left:left + 12]
        torch.testing.assert_close(sample["gt"], expected_gt, atol=1e-6, rtol=0)
        torch.testing.assert_close(sample["inp"], apply_augment(
            plain["inp"] if not flip else apply_geometry(plain["inp"], AugmentParams(hflip=plain_flipped(
                plain, data, base, seed))), params), atol=1e-6, rtol=0)
        # coord: the crop (and its context) in the transformed r x r image, as without augmentation
        assert torch.equal(sample["coord"], make_coord((r, r), Region(top, left, 12, 12), margin=context))
        assert torch.equal(sample["coord"][context:context + 12, context:context + 12],
                           make_coord((r, r))[top:top + 12, left:left + 12])
        assert sample["gt"].min() >= -1 and sample["gt"].max() <= 1
    assert len(seen) >= 6  # several distinct geometries were exercised


def plain_flipped(plain, data, config, seed) -> bool:
    """Whether the un-augmented sample was flipped (undo it: the replayed params include the flip)."""
    return config.flip and replay_params(config, 60, seed).hflip


def test_source_region_is_the_pre_image():
    x = torch.arange(7 * 7).reshape(1, 7, 7)
    for hflip in (False, True):
        for vflip in (False, True):
            for k in range(4):
                params = AugmentParams(hflip, vflip, k)
                for top, left in [(0, 0), (1, 4), (4, 2)]:
                    src = source_region(Region(top, left, 3, 3), 7, params)
                    crop = x[:, src.top:src.top + 3, src.left:src.left + 3]
                    assert torch.equal(apply_geometry(crop, params),
                                       apply_geometry(x, params)[:, top:top + 3, left:left + 3])


def test_seeded_and_off_by_default():
    data = encode(texture(50, 64))
    config = PatchConfig(encoder_size=16, patch_size=8, augment=ALL_ON, fast_decode=False)
    a, b = (sample_patch(data, config, DECODE, random.Random(5)) for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in ("inp", "gt", "coord", "crop"))
    assert AugmentConfig() == PatchConfig().augment
    rng = random.Random(1)
    assert sample_params(AugmentConfig(), rng) == AugmentParams() and rng.random() == random.Random(1).random()
    plain = PatchConfig(encoder_size=16, patch_size=8, flip=True)
    off = PatchConfig(encoder_size=16, patch_size=8, flip=True, augment=AugmentConfig())
    for seed in range(4):
        x, y = sample_patch(data, plain, DECODE, random.Random(seed)), sample_patch(data, off, DECODE, random.Random(seed))
        assert all(torch.equal(x[k], y[k]) for k in ("inp", "gt", "coord", "crop"))


def test_config_from_dict():
    config = from_dict(PatchConfig, {"augment": {"rot90": True, "hue_degrees": 30}})
    assert config.augment.rot90 and config.augment.hue_degrees == 30
    with pytest.raises(ValueError):
        AugmentConfig(saturation=-0.1)


def test_colour_ops_stay_in_range():
    x = torch.rand(3, 16, 16) * 2 - 1
    rng = random.Random(0)
    for _ in range(20):
        y = apply_colour(x, sample_params(ALL_ON, rng))
        assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1


def test_hue_rotation_by_360_is_identity():
    rgb = torch.rand(3, 8, 8)
    hsv = rgb_to_hsv(rgb)
    assert torch.equal(rotate_hue(hsv, 360), rotate_hue(hsv, 0))
    torch.testing.assert_close(hsv_to_rgb(rotate_hue(hsv, 360)), rgb, atol=1e-6, rtol=0)
    x = rgb * 2 - 1
    torch.testing.assert_close(apply_colour(x, AugmentParams(hue_degrees=360.0, saturation=1.0 + 1e-9)), x,
                               atol=1e-6, rtol=0)
    # 120 degrees moves red to green: a pure permutation of the primaries
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)
    torch.testing.assert_close(apply_colour(red, AugmentParams(hue_degrees=120.0)),
                               torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1), atol=1e-5, rtol=0)


def test_channel_permutation_permutes():
    x = torch.rand(3, 4, 4) * 2 - 1
    y = apply_colour(x, AugmentParams(permutation=(2, 0, 1)))
    assert torch.equal(y, x[[2, 0, 1]])
    rng = random.Random(0)
    drawn = {sample_params(AugmentConfig(channel_permutation=True), rng).permutation for _ in range(60)}
    assert len(drawn) == 6
