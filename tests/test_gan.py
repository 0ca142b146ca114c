"""PatchGAN discriminator, hinge losses and the adaptive GAN weight (checked against hand computations)."""
import pytest
import torch
from torch import nn

from infd.config import ConfigError, from_dict
from infd.losses import PatchDiscriminator, PatchDiscriminatorConfig, adaptive_gan_weight, hinge_d_loss, hinge_g_loss


def test_discriminator_layout_matches_pix2pix():
    d = PatchDiscriminator(PatchDiscriminatorConfig())
    shapes = {k: tuple(v.shape) for k, v in d.state_dict().items() if k.endswith("weight")}
    # taming NLayerDiscriminator(3, 64, 3) layout: conv, lrelu, [conv, bn, lrelu] x 3, conv.
    assert shapes == {"main.0.weight": (64, 3, 4, 4), "main.2.weight": (128, 64, 4, 4), "main.3.weight": (128,),
                      "main.5.weight": (256, 128, 4, 4), "main.6.weight": (256,),
                      "main.8.weight": (512, 256, 4, 4), "main.9.weight": (512,), "main.11.weight": (1, 512, 4, 4)}
    hand = (3 * 64 * 16 + 64) + (64 * 128 * 16 + 2 * 128) + (128 * 256 * 16 + 2 * 256) \
        + (256 * 512 * 16 + 2 * 512) + (512 * 16 + 1)
    assert sum(p.numel() for p in d.parameters()) == hand
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))


def test_discriminator_output_shape_and_init():
    torch.manual_seed(0)
    d = PatchDiscriminator(PatchDiscriminatorConfig(base_channels=64, num_layers=3))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    big = torch.cat([m.weight.flatten() for m in convs])
    assert abs(big.std().item() - 0.02) < 0.001 and abs(big.mean().item()) < 0.001
    bn = torch.cat([m.weight for m in d.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 0.01 and 0.01 < bn.std().item() < 0.03
    small = PatchDiscriminator(PatchDiscriminatorConfig(base_channels=4, num_layers=3))
    assert small(torch.randn(2, 3, 256, 256)).shape == (2, 1, 30, 30)
    assert PatchDiscriminator(PatchDiscriminatorConfig(base_channels=4, num_layers=2))(
        torch.randn(1, 3, 64, 64)).shape == (1, 1, 14, 14)


def test_each_logit_sees_a_70_pixel_patch():
    d = PatchDiscriminator(PatchDiscriminatorConfig(base_channels=4)).eval()
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = d(x)  # (1, 1, 14, 14)
    logits[0, 0, 7, 7].backward()
    seen = x.grad.abs().sum(dim=(0, 1)) > 0
    assert seen.any(dim=1).sum() == 70 and seen.any(dim=0).sum() == 70


def test_discriminator_config_errors():
    with pytest.raises(ConfigError, match="num_layers must be >= 1"):
        from_dict(PatchDiscriminatorConfig, {"num_layers": 0})
    with pytest.raises(ConfigError, match="unknown config key 'ndf'"):
        from_dict(PatchDiscriminatorConfig, {"ndf": 64})


def test_hinge_losses_known_values():
    real = torch.tensor([2.0, 0.5])  # relu(1 - real) = [0, 0.5] -> mean 0.25
    fake = torch.tensor([-3.0, 0.0])  # relu(1 + fake) = [0, 1] -> mean 0.5
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    assert hinge_g_loss(fake).item() == pytest.approx(1.5)
    perfect = hinge_d_loss(torch.full((1, 1, 3, 3), 5.0), torch.full((1, 1, 3, 3), -5.0))
    assert perfect.item() == 0.0


def test_adaptive_weight_equals_hand_computation():
    torch.manual_seed(1)
    B, K, C, H, W = 2, 5, 3, 4, 6
    x = torch.randn(B, K, H, W)
    real = torch.randn(B, C, H, W)
    last = nn.Conv2d(K, C, 1)  # the tiny "renderer": its weight is the last layer
    a = torch.randn(C)  # a fixed linear 1x1 "discriminator"
    fake = last(x)
    rec = (fake - real).abs().mean()
    gan = -torch.einsum("c,bchw->bhw", a, fake).mean()
    got = adaptive_gan_weight(rec, gan, last.weight)

    # d rec / d W[c, k] = mean over all B*C*H*W elements of sign(fake - real)[b, c] * x[b, k]
    sign = torch.sign(fake.detach() - real)
    g_rec = torch.einsum("bchw,bkhw->ck", sign, x) / (B * C * H * W)
    # d gan / d W[c, k] = -a_c * mean over B*H*W of x[b, k]
    g_gan = -a[:, None] * x.sum(dim=(0, 2, 3))[None, :] / (B * H * W)
    expected = g_rec.norm() / (g_gan.norm() + 1e-4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert not got.requires_grad
    # The graphs survive for the caller's backward.
    (rec + got * gan).backward()
    assert last.weight.grad is not None


def test_adaptive_weight_clamps():
    w = torch.ones(3, requires_grad=True)
    rec = (w * 1e3).sum()
    gan = (w * 1e-12).sum()  # almost no GAN gradient -> ratio ~1e7, clamped
    assert adaptive_gan_weight(rec, gan, w).item() == pytest.approx(1e4)
    assert adaptive_gan_weight(rec, gan, w, max_weight=10.0).item() == pytest.approx(10.0)


def test_adaptive_weight_needs_autograd():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="adaptive_gan_weight needs"):
        adaptive_gan_weight(torch.tensor(1.0), (w * 2).sum(), w)
