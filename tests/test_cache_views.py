"""Latent caches of many random views per photo (data/views.py, tools/cache_latents.py --views)."""
import io
import random
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch
from PIL import Image

from infd.data.augment import AugmentConfig, AugmentParams, apply_colour, apply_geometry
from infd.data.latents import load_stats
from infd.data.resize import resize_pil
from infd.data.views import draw_view, sample_views, view_rng
from dm_testing import CORRUPT_KEY, photo_bytes, tiny_autoencoder, write_photo_shards
from test_dm_cache import read_cache
from tool_testing import load_tool


def test_views_span_scales_and_positions_and_repeat_from_the_seed():
    rng = random.Random(0)
    boxes = [draw_view(400, 250, 32, rng) for _ in range(500)]
    assert all(0 <= l and 0 <= t and l + s <= 400 and t + s <= 250 and 32 <= s <= 250 for l, t, s in boxes)
    sides = [s for _, _, s in boxes]
    assert min(sides) < 40 and max(sides) > 220  # log-uniform from the encoder size to the whole height
    assert len({(l, t) for l, t, _ in boxes}) > 450
    left, top, side = draw_view(20, 30, 32, random.Random(1))
    assert left == 0 and side == 20 and 0 <= top <= 10  # smaller than the encoder: the whole side
    a = sample_views(photo_bytes(2), 4, 16, view_rng(7, "k"), AugmentConfig(hflip=True, hue_degrees=30))
    b = sample_views(photo_bytes(2), 4, 16, view_rng(7, "k"), AugmentConfig(hflip=True, hue_degrees=30))
    c = sample_views(photo_bytes(2), 4, 16, view_rng(8, "k"), AugmentConfig(hflip=True, hue_degrees=30))
    assert all(torch.equal(x["inp"], y["inp"]) and x["view"] == y["view"] for x, y in zip(a, b))
    assert any(x["view"] != y["view"] for x, y in zip(a, c))


def test_a_view_is_its_box_resized_and_augmented():
    data = photo_bytes(1)
    for view in sample_views(data, 6, 16, view_rng(0, "x"), AugmentConfig(hflip=True, rot90=True, saturation=0.3)):
        left, top, side = view["view"]
        with Image.open(io.BytesIO(data)) as img:
            expected = resize_pil(img.convert("RGB"), 16, (left, top, left + side, top + side))
        params = AugmentParams(**{**view["augment"], "permutation": tuple(view["augment"]["permutation"])})
        expected = apply_colour(apply_geometry(expected, params).contiguous() / 127.5 - 1, params)
        assert view["inp"].shape == (3, 16, 16)
        torch.testing.assert_close(view["inp"], expected, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def view_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    images = write_photo_shards(root / "images", 4, per_shard=3, corrupt=True)
    model = tiny_autoencoder(root / "ae.safetensors")
    main = load_tool("cache_latents").main

    def cache(out, *extra):
        stdout, stderr = io.StringIO(), io.StringIO()
        with redirect_stdout(stdout), redirect_stderr(stderr):
            rc = main(["--checkpoint", str(root / "ae.safetensors"), "--data", images, "--out", str(out),
                       "--views", "5", "--batch-size", "3", "--quiet", *extra])
        return rc, stdout.getvalue(), stderr.getvalue()

    return {"root": root, "model": model, "cache": cache, "images": images}


def test_the_cache_holds_every_view_with_its_box_and_label(view_cache):
    root = view_cache["root"]
    rc, out, err = view_cache["cache"](root / "a" / "lat-%03d.tar", "--seed", "3")
    assert rc == 0, err
    assert "images encoded: 4, latents written: 20" in out and "skipped: 1" in out
    latents = read_cache(str(root / "a" / "lat-000.tar"))
    assert sorted(latents) == sorted(f"{i:04d}_v{v:04d}" for i in range(4) for v in range(5))
    assert CORRUPT_KEY not in {m["key"] for _, m in latents.values()}
    z, meta = latents["0002_v0003"]
    assert meta["label"] == 2 and len(meta["view"]) == 3 and "hflip" in meta["augment"]
    views = sample_views(photo_bytes(2), 5, 32, view_rng(3, "0002"), AugmentConfig(hflip=True))
    with torch.no_grad():
        expected = view_cache["model"].encode(views[3]["inp"][None])[0]
    assert meta["view"] == views[3]["view"]
    torch.testing.assert_close(z, expected, atol=1e-5, rtol=0)
    stats = load_stats(root / "a" / "stats.json")
    assert stats.views == 5 and stats.view_seed == 3 and stats.view_augment["hflip"] and stats.num_labelled == 20
    rc, _, err = view_cache["cache"](root / "b" / "lat-%03d.tar", "--seed", "3")
    again = read_cache(str(root / "b" / "lat-000.tar"))
    assert rc == 0 and all(torch.equal(again[k][0], latents[k][0]) for k in latents)  # deterministic


@pytest.mark.parametrize("extra, message", [
    (["--flip"], "views are flipped by their augmentation"),
    (["--view-augment", "twirl"], "unknown item 'twirl'"),
    (["--view-augment", "hue=lots"], "is not a number"),
])
def test_bad_view_options_are_one_line(view_cache, extra, message):
    rc, _, err = view_cache["cache"](view_cache["root"] / "bad" / "lat-%03d.tar", *extra)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and message in lines[0], err
