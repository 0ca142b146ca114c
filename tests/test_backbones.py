"""UNet and U-ViT backbones: one contract, any latent size, batch equivariance, conditioning, checkpoints."""
from pathlib import Path

import pytest
import torch

from diffusion_testing import perturbed, tiny_unet, tiny_uvit
from infd.checkpoint import load_model, save_model
from infd.config import ConfigError, from_dict, to_dict
from infd.diffusion.config import DiffusionConfig, build_backbone, build_schedule, load_diffusion_config
from infd.models.unet import UNet, UNetConfig
from infd.models.uvit import UViTConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dm"
BUILDERS = {"unet": tiny_unet, "uvit": tiny_uvit}


@pytest.mark.parametrize("kind", ["unet", "uvit"])
@pytest.mark.parametrize("size", [(8, 8), (16, 24)])
def test_any_size_divisible_by_the_stride(kind, size):
    model = perturbed(BUILDERS[kind](num_classes=5))
    x = torch.randn(2, 3, *size)
    for t in (torch.tensor([3, 700]), torch.tensor([3.5, 700.25])):
        out = model(x, t, torch.tensor([1, 5]))
        assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["unet", "uvit"])
def test_batch_order_equivariance(kind):
    model = perturbed(BUILDERS[kind](num_classes=5))
    x, t, y = torch.randn(5, 3, 8, 16), torch.tensor([0, 10, 200, 500, 999]), torch.tensor([0, 1, 2, 3, 5])
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        out = model(x, t, y)
        out_perm = model(x[perm], t[perm], y[perm])
    torch.testing.assert_close(out_perm, out[perm], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], out[1], atol=1e-3)


@pytest.mark.parametrize("kind", ["unet", "uvit"])
def test_output_depends_on_time_and_label_and_none_means_null(kind):
    model = perturbed(BUILDERS[kind](num_classes=3))
    x = torch.randn(1, 3, 8, 8).expand(2, 3, 8, 8)  # the same input twice
    with torch.no_grad():
        by_time = model(x, torch.tensor([10, 900]), torch.tensor([1, 1]))
        by_label = model(x, torch.tensor([10, 10]), torch.tensor([0, 2]))
        null = model(x, torch.tensor([10, 10]), torch.tensor([3, 3]))
        none = model(x, torch.tensor([10, 10]), None)
    assert (by_time[0] - by_time[1]).abs().max() > 1e-3
    assert (by_label[0] - by_label[1]).abs().max() > 1e-3
    torch.testing.assert_close(none, null, atol=0, rtol=0)
    torch.testing.assert_close(model.null_cond(torch.tensor([0, 2])), torch.tensor([3, 3]))


@pytest.mark.parametrize("kind", ["unet", "uvit"])
def test_save_load_round_trip_is_bit_exact(kind, tmp_path):
    model = perturbed(BUILDERS[kind](num_classes=4))
    path = save_model(model, tmp_path / f"{kind}.safetensors")
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x, t, y = torch.randn(2, 3, 8, 8), torch.tensor([5, 50]), torch.tensor([0, 4])
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), model(x, t, y))


def test_unet_cross_attention_respects_the_context_mask():
    model = perturbed(tiny_unet(context_dim=12))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([5, 500])
    context = torch.randn(2, 6, 12)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    with torch.no_grad():
        masked = model(x, t, {"context": context, "context_mask": mask})
        short = model(x[:1], t[:1], {"context": context[:1, :4]})
        full = model(x, t, context)
    torch.testing.assert_close(masked[:1], short, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(masked[1:], full[1:], atol=1e-5, rtol=1e-5)
    assert (masked[0] - full[0]).abs().max() > 1e-4  # the padded tokens did matter without the mask


def test_uvit_position_embeddings():
    model = perturbed(tiny_uvit())
    table = model.position_embedding(4, 4, "cpu")
    assert table is model.patch_pos  # the learned 1D table at its own grid
    assert model.position_embedding(2, 6, "cpu").shape == (1, 12, 32)
    sin = perturbed(tiny_uvit(pos_embed="sinusoidal"))
    assert "patch_pos" not in dict(sin.named_parameters())
    assert sin(torch.randn(1, 3, 12, 20), torch.tensor([9])).shape == (1, 3, 12, 20)


def test_dropout_is_off_in_eval_mode():
    model = perturbed(tiny_unet(dropout=0.5))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    with torch.no_grad():
        assert torch.equal(model(x, t), model(x, t))
        model.train()
        assert not torch.equal(model(x, t), model(x, t))


def test_bad_inputs_fail_clearly():
    unet, uvit = tiny_unet(), tiny_uvit()
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([1])
    with pytest.raises(ValueError, match="divisible by 2"):
        unet(torch.randn(1, 3, 8, 9), t)
    with pytest.raises(ValueError, match="divisible by 2"):
        uvit(torch.randn(1, 3, 7, 8), t)
    with pytest.raises(ValueError, match="num_classes=None"):
        unet(x, t, torch.tensor([0]))
    with pytest.raises(ValueError, match="labels must lie"):
        tiny_uvit(num_classes=3)(x, t, torch.tensor([4]))
    with pytest.raises(ValueError, match="context"):
        tiny_unet(context_dim=8)(x, t)
    with pytest.raises(ValueError, match="class labels only"):
        uvit(x, t, torch.randn(1, 4, 8))
    with pytest.raises(ValueError, match="shape"):
        unet(x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="expects"):
        unet(torch.randn(1, 4, 8, 8), t)
    with pytest.raises(ValueError, match="depth must be odd"):
        UViTConfig(depth=4)
    with pytest.raises(ValueError, match="exactly one"):
        UNetConfig(head_channels=32, num_heads=4)
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(channels=24, norm_groups=32)


def test_paper_unet_config_has_the_ldm_size():
    config = load_diffusion_config(CONFIGS / "unet_ffhq.yaml")
    assert config.backbone == "unet" and isinstance(config.model, UNetConfig)
    assert config.model.stride == 8 and config.schedule.kind == "scaled_linear"
    with torch.device("meta"):
        model = build_backbone(config)
    count = sum(p.numel() for p in model.parameters())
    assert 273e6 < count < 275e6  # LDM reports 274M for its FFHQ LDM-4 UNet
    assert from_dict(DiffusionConfig, to_dict(config)) == config
    schedule = build_schedule(config)
    assert schedule.num_steps == 1000 and schedule.betas[-1].item() == pytest.approx(0.0195)


@pytest.mark.parametrize("name", ["unet_tiny", "uvit_tiny", "uvit_small"])
def test_dm_configs_build(name):
    config = load_diffusion_config(CONFIGS / f"{name}.yaml")
    with torch.device("meta"):
        model = build_backbone(config)
    assert model.config is config.model


def test_diffusion_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.chanels"):
        load_diffusion_config(CONFIGS / "unet_tiny.yaml", {"model": {"chanels": 3}})
    with pytest.raises(ConfigError, match="backbone"):
        load_diffusion_config(CONFIGS / "unet_tiny.yaml", {"backbone": "dit"})
    with pytest.raises(ConfigError, match="sampler.name"):
        load_diffusion_config(CONFIGS / "unet_tiny.yaml", {"sampler": {"name": "euler"}})
