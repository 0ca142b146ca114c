"""FID and patch-FID with a tiny random feature extractor: the math, the seeded crops, samples vs photos."""
import dataclasses

import pytest
import torch
from eval_testing import TinyExtractor, photo, png_bytes, tiny_autoencoder, tiny_bundle, write_photo_shards

from infd.data import sample_whole
from infd.data.decode import open_image
from infd.data.patches import decode_square
from infd.data.resize import resize_region
from infd.checkpoint import save_model
from infd.eval import fid
from infd.eval.photos import eval_data_config, photo_crop, photo_square
from infd.eval.run import EvalOptions, evaluate, evaluate_fid
from infd.rendering.engine import render
from infd.diffusion.sampling import SamplingSpec
from infd.rendering.sampling import sample_latents
from infd.renderers.coords import Region


def smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=gen) * 1.6 - 0.8
    return torch.nn.functional.interpolate(coarse, size=(24, 24), mode="bilinear", align_corners=False)


def fid_between(a: torch.Tensor, b: torch.Tensor) -> float:
    extractor = TinyExtractor()
    real = fid.collect_features([{"x": a[:20]}, {"x": a[20:]}], extractor)
    fake = fid.collect_features([{"x": b}], extractor)
    return fid.fid_table(real, fake)["x"]


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    images = smooth_images(48)
    assert abs(fid_between(images, images)) < 1e-8
    values = [fid_between(images, (images + shift).clamp(-1, 1)) for shift in (0.05, 0.2, 0.5)]
    assert 0 < values[0] < values[1] < values[2]
    other = smooth_images(48, seed=1)  # another draw of the same distribution: small but not zero
    assert 0 < fid_between(images, other) < values[2]


def test_patch_regions_are_seeded_reproducible_and_inside():
    regions = [fid.patch_region(1024, 256, i, seed=3) for i in range(50)]
    assert regions == [fid.patch_region(1024, 256, i, seed=3) for i in range(50)]
    assert all(r.height == r.width == 256 and r.bottom <= 1024 and r.right <= 1024 for r in regions)
    assert len({(r.top, r.left) for r in regions}) > 45  # one random crop per image
    assert fid.patch_region(1024, 256, 7, seed=4) != fid.patch_region(1024, 256, 7, seed=3)
    assert fid.patch_region(2048, 256, 7, seed=3) != fid.patch_region(1024, 256, 7, seed=3)
    assert fid.patch_region(256, 256, 7) == Region(0, 0, 256, 256)
    with pytest.raises(ValueError, match="does not fit"):
        fid.patch_region(128, 256, 0)
    with pytest.raises(ValueError, match="must fit in the smallest render size"):
        fid.FIDSettings(full_size=32, sizes=(64, 128), patch=96)


def test_more_crops_per_image_keep_the_first_and_draw_new_ones():
    one = fid.FIDSettings(full_size=32, sizes=(1024,), patch=256, seed=3)
    three = dataclasses.replace(one, crops=3)
    regions = fid.image_regions(three, 1024, [7, 8])
    assert regions[::3] == fid.image_regions(one, 1024, [7, 8]) == [fid.patch_region(1024, 256, i, seed=3) for i in (7, 8)]
    assert regions[1] == fid.patch_region(1024, 256, 7, seed=3, crop=1) and len(set(regions)) == 6
    with pytest.raises(ValueError, match="--patch-crops must be >= 1"):
        dataclasses.replace(one, crops=0)


def test_real_crops_are_the_crops_of_the_resized_photo():
    data = png_bytes(photo(5, (72, 56)))
    config = eval_data_config("unused.tar", 32)
    region = fid.patch_region(96, 24, 0)
    crop = photo_crop(data, 96, region, config)
    img, box = decode_square(open_image(data), config.patches, config.decode, None)
    full = resize_region(img, (96, 96), None, "lanczos", box) / 127.5 - 1
    rows, cols = region.slices()
    torch.testing.assert_close(crop, full[:, rows, cols], rtol=0, atol=0)  # exactly the full resize's pixels
    square = photo_square(data, 96, config)
    whole = sample_whole(data, dataclasses.replace(config.patches, whole_size=96), config.decode)["gt"]
    torch.testing.assert_close(square, whole, rtol=0, atol=0)  # the ground truth of data.sample_whole
    assert (crop - square[:, rows, cols]).abs().max() < 3 / 127.5  # Pillow's 8-bit Lanczos: within rounding


def test_sample_crops_are_crops_of_the_full_render_whatever_the_batch():
    model = tiny_bundle()
    settings = fid.FIDSettings(full_size=32, sizes=(48, 64), patch=16, seed=2)
    options = SamplingSpec(steps=2)
    batches = list(fid.sample_batches(model, [3, 5, 8], settings, options, batch=2))
    assert [b["full"].shape[0] for b in batches] == [2, 1]
    assert batches[0][fid.patch_key(64)].shape == (2, 3, 16, 16)
    with torch.no_grad():
        phi = model.decode(sample_latents(model, [5], options))
    for R in settings.sizes:
        full = render(model.renderer, phi, (R, R)).clamp(-1, 1)
        rows, cols = fid.patch_region(R, 16, 5, seed=2).slices()
        torch.testing.assert_close(batches[0][fid.patch_key(R)][1], full[0, :, rows, cols], rtol=0, atol=1e-5)
    alone = next(fid.sample_batches(model, [5], settings, options))
    torch.testing.assert_close(alone["full"][0], batches[0]["full"][1], rtol=0, atol=1e-5)


def test_several_crops_per_sample_are_regions_of_its_render_sample_by_sample():
    model = tiny_bundle()
    settings = fid.FIDSettings(full_size=32, sizes=(48,), patch=16, seed=2, crops=3)
    options = SamplingSpec(steps=2)
    batch = next(fid.sample_batches(model, [3, 5], settings, options, batch=2))
    assert batch["full"].shape[0] == 2 and batch[fid.patch_key(48)].shape == (6, 3, 16, 16)
    with torch.no_grad():
        full = render(model.renderer, model.decode(sample_latents(model, [5], options)), (48, 48)).clamp(-1, 1)
    for k in range(3):  # seed 5's crops come after seed 3's
        rows, cols = fid.patch_region(48, 16, 5, seed=2, crop=k).slices()
        torch.testing.assert_close(batch[fid.patch_key(48)][3 + k], full[0, :, rows, cols], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="5 regions for 2 fields"):
        fid.render_crops(model.renderer, torch.zeros(2, 4, 8, 8), 48, [Region(0, 0, 16, 16)] * 5)


def test_real_and_reconstructed_photos_give_their_crops_photo_by_photo():
    autoencoder = tiny_autoencoder()
    config = eval_data_config("unused.tar", autoencoder.config.input_size)
    photos = [png_bytes(photo(i, (72, 56))) for i in (1, 2)]
    settings = fid.FIDSettings(full_size=16, sizes=(48,), patch=16, seed=1, crops=2)
    real = list(fid.real_batches(photos, settings, config, batch=2))[0]["patch@48"]
    rec = list(fid.reconstructed_crops(autoencoder, photos, settings, config))
    assert real.shape == (4, 3, 16, 16) and [tuple(b["patch@48"].shape) for b in rec] == [(2, 3, 16, 16)] * 2
    with torch.no_grad():
        x = photo_square(photos[1], autoencoder.config.input_size, config).unsqueeze(0)
        full = render(autoencoder.renderer, autoencoder.decode(autoencoder.encode(x)), (48, 48)).clamp(-1, 1)
    for k in range(2):  # photo 1's crops: the same regions of the photo and of its reconstruction
        region = fid.patch_region(48, 16, 1, seed=1, crop=k)
        torch.testing.assert_close(real[2 + k], photo_crop(photos[1], 48, region, config), rtol=0, atol=0)
        rows, cols = region.slices()
        torch.testing.assert_close(rec[1]["patch@48"][k], full[0, :, rows, cols], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    return {"val": write_photo_shards(folder, "val", [100, 101]),
            "train": write_photo_shards(folder, "train", range(6), per_shard=3)}


def test_evaluate_fid_of_a_bundle_is_reproducible(shards):
    options = EvalOptions(fid=True, num_samples=4, fid_sizes=(48, 64), patch=16, sampling=SamplingSpec(steps=2), batch=3, lpips=False)
    results = [evaluate_fid(tiny_bundle(), shards["train"], options, extractor=TinyExtractor()) for _ in range(2)]
    for r in results:
        assert r.pop("sampler_seconds_per_sample") > 0  # a time: the one figure that differs between runs
    first = results[0]
    assert first == results[1]  # seeded samples and crops
    assert first["num_samples"] == 4 and first["num_real"] == 6 and first["full_size"] == 32
    assert list(first["patch_fid"]) == ["48", "64"] and first["extractor"] == "TinyExtractor"
    assert all(v > 0 for v in [first["fid"], *first["patch_fid"].values()])
    assert first["sample_scale_consistency"] > 0 and first["seeds"] == "0-3"


def test_patch_crops_multiply_the_patch_vectors_and_first_n_takes_as_many_as_the_held_out(shards):
    from infd.eval.photos import load_photos

    options = EvalOptions(fid=True, num_samples=5, fid_sizes=(48,), patch=16, sampling=SamplingSpec(steps=1),
                          batch=3, lpips=False, patch_crops=3)
    held = load_photos(eval_data_config(shards["val"], 32))
    result = evaluate_fid(tiny_bundle(), shards["train"], options, extractor=TinyExtractor(), heldout=held,
                          heldout_config=eval_data_config(shards["val"], 32))
    assert result["patch_crops"] == 3 and result["references"]["counts"]["heldout"] == 2
    one = evaluate_fid(tiny_bundle(), shards["train"], dataclasses.replace(options, patch_crops=1),
                       extractor=TinyExtractor(), heldout=held, heldout_config=eval_data_config(shards["val"], 32))
    assert one["patch_fid"]["48"] != result["patch_fid"]["48"] and one["fid"] == result["fid"]  # whole images: same
    assert result["fid_first_n"]["count"] == 2 and result["fid_first_n"]["fid"] == one["fid_first_n"]["fid"]


def test_evaluate_a_bundle_end_to_end_and_refuse_fid_of_an_autoencoder(shards, tmp_path):
    bundle = save_model(tiny_bundle(), tmp_path / "bundle.safetensors")
    options = EvalOptions(sizes=(16, 32), scales=(2,), fid=True, num_samples=3, fid_sizes=(32,), patch=16,
                          sampling=SamplingSpec(steps=1), lpips=False)
    results = evaluate(bundle, shards["val"], options, train_data=shards["train"], extractor=TinyExtractor())
    assert results["kind"] == "latent_diffusion" and results["num_photos"] == 2 and results["encoder_size"] == 32
    assert list(results["reconstruction"]) == ["16", "32"] and list(results["sr"]) == ["2"]
    assert results["fid"]["num_samples"] == 3 and list(results["fid"]["patch_fid"]) == ["32"]
    ae = save_model(tiny_autoencoder(), tmp_path / "ae.safetensors")
    with pytest.raises(ValueError, match="needs a latent diffusion bundle"):
        evaluate(ae, shards["val"], options, train_data=shards["train"], extractor=TinyExtractor())
    with pytest.raises(ValueError, match="--train-data"):
        evaluate(bundle, shards["val"], options, extractor=TinyExtractor())
    with pytest.raises(ValueError, match="at least 2 samples"):
        EvalOptions(fid=True, num_samples=1)


def test_per_seed_labels_sample_each_seed_as_its_label_alone():
    from inverse_testing import make_bundle

    model = make_bundle()
    settings = fid.FIDSettings(full_size=32, sizes=(48,), patch=16)
    options = SamplingSpec(steps=2)
    batches = list(fid.sample_batches(model, [3, 5, 8], settings, options, batch=2, labels=[1, 0, 1]))
    assert [b["full"].shape[0] for b in batches] == [2, 1]  # seed order: seeds 3 and 5 (two labels), then 8
    for index, (seed, label) in enumerate(((3, 1), (5, 0), (8, 1))):
        alone = next(fid.sample_batches(model, [seed], settings, dataclasses.replace(options, class_label=label)))
        got = torch.cat([b["full"] for b in batches])[index]
        torch.testing.assert_close(got, alone["full"][0], rtol=0, atol=1e-5)
    other = next(fid.sample_batches(model, [5], settings, dataclasses.replace(options, class_label=2)))
    assert not torch.allclose(other["full"][0], torch.cat([b["full"] for b in batches])[1], atol=1e-3)
    with pytest.raises(ValueError, match="2 labels for 3 seeds"):
        list(fid.sample_batches(model, [3, 5, 8], settings, options, labels=[1, 0]))


def test_train_labels_cycle_through_the_training_photos_labels(tmp_path):
    from eval_testing import photo
    from infd.data.shards import ShardWriter
    from infd.eval.run import train_labels
    from inverse_testing import make_bundle

    writer = ShardWriter(str(tmp_path / "train-%02d.tar"), max_count=2)
    for i, label in enumerate([2, 0, 3]):
        writer.write(f"p{i}", {"png": png_bytes(photo(i, (40, 40))), "json": f'{{"label": {label}}}'.encode()})
    writer.close()
    config = eval_data_config(sorted(str(p) for p in tmp_path.glob("train-*.tar")), 32)
    assert train_labels(make_bundle(), config, list(range(10, 17))) == [2, 0, 3, 2, 0, 3, 2]
    assert train_labels(make_bundle(dm={"model": {"num_classes": None}}), config, [0, 1]) is None
    assert train_labels(make_bundle(dm={"model": {"num_classes": 3}}), eval_data_config(
        sorted(str(p) for p in tmp_path.glob("train-*.tar"))[:1], 32), [0]) == [2]
    with pytest.raises(ValueError, match="prior only 0..2"):
        train_labels(make_bundle(dm={"model": {"num_classes": 3}}), config, [0])
    unlabelled = write_photo_shards(tmp_path, "plain", [1, 2])
    with pytest.raises(ValueError, match="JSON 'label' on every training photo"):
        train_labels(make_bundle(), eval_data_config(unlabelled, 32), [0])
    with pytest.raises(ValueError, match="drop --class"):
        EvalOptions(fid=True, train_labels=True, sampling=SamplingSpec(class_label=1))


def test_checkpoint_labels_name_the_run_of_a_checkpoint_or_an_exported_bundle():
    from infd.eval.run import checkpoint_label

    model = tiny_autoencoder()
    assert checkpoint_label("runs/a/checkpoints/model-latest.safetensors", model) == "a [clif]"
    assert checkpoint_label("runs/cmp/uvit/bundle.safetensors", model) == "uvit [clif]"
    assert checkpoint_label("wip/ae_cpu_v6.safetensors", model) == "ae_cpu_v6 [clif]"


def test_reconstructed_crops_are_crops_of_the_encoded_square_rendered_at_each_size():
    autoencoder = tiny_autoencoder()
    config = eval_data_config("unused.tar", autoencoder.config.input_size)
    photos = [png_bytes(photo(i, (72, 56))) for i in (1, 2)]
    settings = fid.FIDSettings(full_size=16, sizes=(48,), patch=16, seed=1)
    batches = list(fid.reconstructed_crops(autoencoder, photos, settings, config, views=3))
    assert [tuple(b["patch@48"].shape) for b in batches] == [(3, 3, 16, 16)] * 2
    with torch.no_grad():
        x = photo_square(photos[1], autoencoder.config.input_size, config).unsqueeze(0)
        full = render(autoencoder.renderer, autoencoder.decode(autoencoder.encode(x)), (48, 48)).clamp(-1, 1)
    for v in range(3):  # photo 1's views are images 3..5, the indices of real_batches' crops
        rows, cols = fid.patch_region(48, 16, 3 + v, seed=1).slices()
        torch.testing.assert_close(batches[1]["patch@48"][v], full[0, :, rows, cols], rtol=1e-4, atol=1e-4)
