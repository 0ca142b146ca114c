"""The Python API (``infd.pipeline``): the same images as the engine, conventions, inputs, save/load, inpaint."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import infd
from infd.diffusion.sampling import CLASS_PER_SEED, DEFAULT_CFG_SCALE, SamplingSpec
from infd.pipeline import Pipeline
from infd.renderers.coords import Region
from infd.rendering.engine import render
from infd.rendering.sampling import sample_latents
from infd.rendering.sinks import quantize

from dm_testing import tiny_autoencoder
from inverse_testing import PHOTO, ROOT, make_bundle
from process_testing import run_group


@pytest.fixture(scope="module")
def pipe():
    return Pipeline(make_bundle(), device="cpu")


@pytest.fixture(scope="module")
def photo():
    with Image.open(PHOTO) as image:
        return image.convert("RGB")


def test_sample_is_the_engine_render_of_the_sampled_latent(pipe):
    images = pipe.sample(seeds=[3, 4], height=40, width=56, steps=3, output="numpy")
    defaults = SamplingSpec(steps=3, cfg_scale=DEFAULT_CFG_SCALE, class_label=CLASS_PER_SEED)  # the pipeline's
    z = sample_latents(pipe.model, [3, 4], defaults)
    with torch.inference_mode():
        expected = quantize(render(pipe.model.renderer, pipe.model.decode(z), (40, 56)), 8)
    assert images.shape == (2, 40, 56, 3) and images.dtype == np.uint8
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1  # fast path vs module: fp32 rounding
    alone = pipe.sample(seeds=4, height=40, width=56, steps=3, output="numpy")
    np.testing.assert_array_equal(alone[0], images[1])  # a seed's image does not depend on its batch


def test_outputs_are_clamped_and_sized_height_by_width(pipe):
    with torch.no_grad():
        phi = pipe.model.decode(pipe.sample_latents([0], steps=2)) * 300  # renders far outside [-1, 1]
        raw = render(pipe.model.renderer, phi, (24, 40))
    assert raw.min() < -1 or raw.max() > 1
    pil = pipe.render_field(phi, height=24, width=40)
    tensor = pipe.render_field(phi, height=24, width=40, output="tensor")
    assert isinstance(pil, list) and pil[0].size == (40, 24) and pil[0].mode == "RGB"
    assert tensor.shape == (1, 3, 24, 40) and tensor.min() >= 0 and tensor.max() <= 1
    torch.testing.assert_close(tensor, ((raw.clamp(-1, 1) + 1) / 2), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(np.asarray(pil[0]), (tensor[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    with pytest.raises(ValueError, match="output must be one of"):
        pipe.render_field(phi, height=8, output="png")


def test_region_renders_the_window_of_the_virtual_image(pipe):
    z = pipe.sample_latents([1], steps=2)
    full = pipe.render(z, height=96, width=80, output="tensor")
    window = pipe.render(z, height=96, width=80, region=Region(top=20, left=8, height=30, width=50), output="tensor")
    torch.testing.assert_close(window, full[..., 20:50, 8:58], atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        pipe.render(z, height=96, width=80, region=Region(top=90, left=0, height=30, width=10))


def test_encode_takes_every_image_form_and_the_centred_square(pipe, photo, tmp_path):
    path = tmp_path / "photo.png"
    photo.save(path)
    array = np.array(photo)
    z = pipe.encode(photo)
    assert z.shape[0] == 1 and z.shape[1:] == pipe.sample_latents([0], steps=1).shape[1:]
    torch.testing.assert_close(pipe.encode(path), z)
    torch.testing.assert_close(pipe.encode(array), z)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(pipe.encode(tensor), z, atol=0.02, rtol=0)  # Pillow's 8-bit rounding only
    wide = np.concatenate([np.zeros_like(array[:, :10]), array, np.full_like(array[:, :10], 255)], axis=1)
    torch.testing.assert_close(pipe.encode(wide), z)  # the side bands are cropped away
    assert pipe.encode([photo, path]).shape[0] == 2
    with pytest.raises(TypeError, match="expected a PIL image"):
        pipe.encode(3)


def test_super_resolve_renders_at_the_scale_of_the_image(pipe, photo):
    out = pipe.super_resolve(photo, scale=2.5, output="tensor")
    side = min(photo.size)
    assert out.shape[-2:] == (round(2.5 * side), round(2.5 * side))
    direct = pipe.render(pipe.encode(photo), height=out.shape[-2], output="tensor")
    torch.testing.assert_close(out, direct)
    assert pipe.super_resolve(photo, height=30, width=50)[0].size == (50, 30)
    with pytest.raises(ValueError, match="either scale or height"):
        pipe.super_resolve(photo, scale=2, height=30)


def test_inpaint_keeps_the_known_pixels_and_pulls_towards_them(pipe, photo):
    small = photo.resize((16, 16), Image.LANCZOS)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255  # fill the centre
    kept = pipe.inpaint(small, mask, steps=6, output="numpy")[0]
    known = mask == 0
    np.testing.assert_array_equal(kept[known], np.asarray(small)[known])
    target = torch.from_numpy(np.array(small)).float() / 255
    errors = []
    for scale in (0.0, 1e6):  # unguided, and a step long enough for the random tiny model
        raw = pipe.inpaint(small, mask, steps=6, condition_scale=scale, keep_known=False, output="tensor")[0]
        errors.append(float((raw.permute(1, 2, 0) - target)[torch.from_numpy(known)].pow(2).mean()))
    assert errors[1] < errors[0] - 2e-3, errors
    ae = Pipeline(tiny_autoencoder_model(), device="cpu")
    with pytest.raises(ValueError, match="diffusion bundle"):
        ae.inpaint(small, mask)


def tiny_autoencoder_model():
    from infd.config import load_config
    from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder

    torch.manual_seed(0)
    return NeuralFieldAutoencoder(load_config(AutoencoderConfig, ROOT / "configs" / "ae" / "tiny.yaml")).eval()


def test_save_and_load_round_trip(pipe, tmp_path):
    path = infd.save(pipe, tmp_path / "copy.safetensors")
    again = infd.load(path, device="cpu")
    np.testing.assert_array_equal(again.sample(seeds=2, height=32, steps=3, output="numpy"),
                                  pipe.sample(seeds=2, height=32, steps=3, output="numpy"))
    with pytest.raises(ValueError, match="loaded from"):
        infd.save(again, path)
    assert again.source == path


def test_an_autoencoder_samples_gaussian_latents(tmp_path):
    tiny_autoencoder(tmp_path / "ae.safetensors")
    ae = infd.load(tmp_path / "ae.safetensors", device="cpu")
    assert not ae.has_prior
    images = ae.sample(seeds=[0, 1], height=20, output="numpy")
    assert images.shape == (2, 20, 20, 3) and not np.array_equal(images[0], images[1])


@pytest.mark.slow
def test_the_readme_python_api_example_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code + "\nprint(images[0].size, window[0].size, sr.size, filled.size)\n")
    proc = run_group([sys.executable, str(script)], timeout=600, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "(512, 384) (512, 512) (768, 768) (64, 64)"
    with Image.open(tmp_path / "sample.png") as image:
        assert image.size == (512, 384)
    again = infd.load(tmp_path / "copy.safetensors", device="cpu")
    assert again.input_size == infd.load(device="cpu").input_size


def test_canvases_crop_the_square_and_grow_the_latent(pipe):
    square = pipe.sample(3, height=64, steps=2, output="tensor")
    crop = pipe.sample(3, height=40, width=64, steps=2, output="tensor", canvas="crop")
    assert crop.shape == (1, 3, 40, 64)
    torch.testing.assert_close(crop, square[..., 12:52, :], atol=1e-5, rtol=0)
    z = pipe.sample_latents(3, steps=2, canvas=(8, 24))
    assert z.shape == (1, 3, 8, 24)
    grow = pipe.sample(3, height=32, width=96, steps=2, output="tensor", canvas="grow")
    torch.testing.assert_close(grow, pipe.render(z, height=32, width=96, output="tensor"), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="--canvas must be one of"):
        pipe.sample(0, height=32, canvas="tile")
