"""The latent diffusion bundle: one checkpoint that renders like an autoencoder and samples its own latents."""
import pytest
import torch

from infd.checkpoint import CheckpointError, save_model
from infd.config import ConfigError, from_dict, load_config
from infd.diffusion.bundle import LatentDiffusion, LatentDiffusionConfig
from infd.diffusion.config import load_diffusion_config
from infd.diffusion.sampling import CLASS_PER_SEED, SamplingSpec
from infd.models.autoencoder import AutoencoderConfig
from infd.rendering.engine import render_latent
from infd.rendering.sampling import load_render_model, sample_latents


def make_bundle(shift=(0.5,), scale=(2.0,)) -> LatentDiffusion:
    config = LatentDiffusionConfig(autoencoder=load_config(AutoencoderConfig, "configs/ae/tiny.yaml"),
                                   diffusion=load_diffusion_config("configs/dm/unet_tiny.yaml"),
                                   latent_shift=shift, latent_scale=scale)
    torch.manual_seed(0)
    bundle = LatentDiffusion(config).eval()
    with torch.no_grad():  # zero-initialised layers (output convs) would hide the labels: randomise them
        for p in bundle.backbone.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return bundle


def test_latent_space_round_trip_uses_shift_and_scale():
    bundle = make_bundle(shift=(0.5, -1.0, 0.0), scale=(2.0, 1.0, 4.0))
    z = torch.randn(2, 3, 8, 8)
    x = bundle.to_model_space(z)
    torch.testing.assert_close(x[:, 0], (z[:, 0] - 0.5) / 2)
    torch.testing.assert_close(x[:, 2], z[:, 2] / 4)
    torch.testing.assert_close(bundle.to_latent_space(x), z)


def test_bad_scaling_is_a_config_error():
    with pytest.raises(ConfigError, match="latent_scale"):
        from_dict(LatentDiffusionConfig, {"autoencoder": {"z_channels": 3}, "latent_scale": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="positive"):
        from_dict(LatentDiffusionConfig, {"latent_scale": [0.0]})


def test_save_load_round_trip_and_render_model(tmp_path):
    bundle = make_bundle()
    path = save_model(bundle, tmp_path / "bundle.safetensors")
    model = load_render_model(path)
    assert isinstance(model, LatentDiffusion)
    for key, value in bundle.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.config.latent_shift == (0.5,) and model.num_classes == 4


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpmpp_2m"])
def test_sampled_latents_do_not_depend_on_the_batch(sampler):
    bundle = make_bundle()
    options = SamplingSpec(sampler, steps=4, cfg_scale=2.0, class_label=1)
    both = sample_latents(bundle, [3, 4], options)
    alone = sample_latents(bundle, [4], options)
    assert both.shape == (2, 3, 8, 8)
    torch.testing.assert_close(both[1:], alone, atol=1e-4, rtol=1e-4)  # batched float sums: rounding only
    assert not torch.allclose(both[0], both[1])


def test_prior_changes_latents_and_guidance_matters():
    bundle = make_bundle()
    noise_only = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    plain = sample_latents(bundle, [5], SamplingSpec(steps=4, class_label=0))
    assert not torch.allclose(plain, noise_only)
    guided = sample_latents(bundle, [5], SamplingSpec(steps=4, cfg_scale=4.0, class_label=0))
    assert not torch.allclose(plain, guided)
    with pytest.raises(Exception, match="not a label"):
        sample_latents(bundle, [5], SamplingSpec(steps=4, class_label=9))


def test_a_class_per_seed_samples_each_seed_as_its_own_class_would():
    bundle = make_bundle()
    classes = bundle.num_classes
    seeds = [classes + 1, 2 * classes + 2]  # classes 1 and 2, in one batch
    mixed = sample_latents(bundle, seeds, SamplingSpec(steps=4, cfg_scale=2.0, class_label=CLASS_PER_SEED))
    for i, seed in enumerate(seeds):
        alone = sample_latents(bundle, [seed], SamplingSpec(steps=4, cfg_scale=2.0, class_label=seed % classes))
        torch.testing.assert_close(mixed[i:i + 1], alone, atol=1e-4, rtol=1e-4)
    other = sample_latents(bundle, seeds[:1], SamplingSpec(steps=4, cfg_scale=2.0, class_label=0))
    assert not torch.allclose(mixed[:1], other, atol=1e-3)
    noise = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="needs the labels of the seeds"):  # the seeds are the caller's
        bundle.sample_latents(noise, SamplingSpec(steps=2, class_label=CLASS_PER_SEED))


def test_explicit_labels_give_each_seed_its_own_class_in_one_batch():
    bundle = make_bundle()
    spec = SamplingSpec(steps=4, cfg_scale=2.0)
    mixed = sample_latents(bundle, [7, 8], spec, labels=[2, 0])
    for i, (seed, label) in enumerate(((7, 2), (8, 0))):
        alone = sample_latents(bundle, [seed], SamplingSpec(steps=4, cfg_scale=2.0, class_label=label))
        torch.testing.assert_close(mixed[i:i + 1], alone, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="1 class labels for a batch of 2"):
        sample_latents(bundle, [7, 8], spec, labels=[2])


def test_bundle_renders_like_an_autoencoder():
    bundle = make_bundle()
    z = sample_latents(bundle, [0], SamplingSpec(steps=2))
    with torch.no_grad():
        rgb = render_latent(bundle, z, (40, 24))
        expected = render_latent(bundle.autoencoder, z, (40, 24))
    assert rgb.shape == (1, 3, 40, 24)
    torch.testing.assert_close(rgb, expected)


def test_bundled_default_model_has_both_stages_within_40_mb():
    from infd.rendering.sampling import BUNDLED_CHECKPOINT

    assert BUNDLED_CHECKPOINT.stat().st_size <= 40 * 2**20
    model = load_render_model()
    assert isinstance(model, LatentDiffusion)
    z = sample_latents(model, [0], SamplingSpec(steps=2))
    assert z.shape == (1, model.config.z_channels, model.config.latent_size, model.config.latent_size)
    assert torch.isfinite(z).all()


def test_a_missing_bundled_model_is_one_line_saying_what_to_do(tmp_path, monkeypatch):
    import infd.rendering.sampling as sampling

    monkeypatch.setattr(sampling, "BUNDLED_CHECKPOINT", tmp_path / "default.safetensors")
    with pytest.raises(CheckpointError) as info:
        load_render_model()
    message = str(info.value)
    assert "\n" not in message and "reinstall infd" in message and "--checkpoint" in message
