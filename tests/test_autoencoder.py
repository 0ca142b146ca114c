"""The neural-field autoencoder: shapes, bottlenecks, gradients, any-size rendering."""
import pytest
import torch

from infd.config import load_config
from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from infd.models.bottleneck import DiagonalGaussian, VectorQuantizer
from infd.renderers.coords import make_query


def tiny(**overrides):
    return NeuralFieldAutoencoder(load_config(AutoencoderConfig, "configs/ae/tiny.yaml", overrides))


@pytest.mark.parametrize("bottleneck", ["vq", "kl", "none"])
def test_shapes_and_training_pass(bottleneck):
    model = tiny(bottleneck=bottleneck)
    inp = torch.rand(2, 3, 32, 32) * 2 - 1
    z = model.encode(inp)
    assert z.shape == (2, 3, 8, 8)  # f4
    phi = model.decode(z)
    assert phi.shape == (2, 32, 32, 32)  # field at 4x the latent
    coord, cell = make_query((37, 91), batch=2)
    rgb, reg = model(inp, coord, cell)
    assert rgb.shape == (2, 3, 37, 91) and reg.dim() == 0 and torch.isfinite(reg)
    (rgb.square().mean() + reg).backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0  # straight-through / reparameterised


def test_field_width_head_and_factor():
    model = tiny(field_channels=24, channel_mult=[1, 2], input_size=16)
    assert model.decoder.conv_out is not None
    phi = model.decode(model.encode(torch.zeros(1, 3, 16, 16)))
    assert phi.shape == (1, 24, 16, 16)


def test_encoder_input_size_is_enforced():
    model = tiny()
    with pytest.raises(ValueError, match="encoder input must be 32x32"):
        model.encode(torch.zeros(1, 3, 40, 40))
    assert model.prepare_input(torch.zeros(1, 3, 96, 96)).shape == (1, 3, 32, 32)


def test_vq_snaps_to_codes_with_standard_loss():
    vq = VectorQuantizer(16, 3, beta=0.25)
    z = torch.randn(2, 3, 4, 5, requires_grad=True)
    z_q, loss, idx = vq(z)
    codes = vq.embedding.weight
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    expected = torch.cdist(flat, codes).argmin(1)
    assert torch.equal(idx.flatten(), expected)
    e = codes[expected].view(2, 4, 5, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(z_q, e)
    torch.testing.assert_close(loss, 1.25 * (e.detach() - z.detach()).square().mean())
    z_q.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # straight-through


def test_kl_matches_closed_form():
    mean, logvar = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4) * 0.1
    posterior = DiagonalGaussian(torch.cat([mean, logvar], 1))
    var = logvar.exp()
    expected = 0.5 * (mean ** 2 + var - 1 - logvar).sum((1, 2, 3))
    torch.testing.assert_close(posterior.kl(), expected)
    assert torch.equal(posterior.mode(), mean)


def test_decode_padding_decodes_the_mirrored_latent_and_crops_its_field():
    padded, plain = tiny(bottleneck="none", decode_padding=2), tiny(bottleneck="none")
    plain.load_state_dict(padded.state_dict())
    z = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        phi = padded.decode(z)
        mirrored = plain.decode(torch.nn.functional.pad(z, (2, 2, 2, 2), mode="reflect"))  # (2, 32, 48, 48)
        assert phi.shape == plain.decode(z).shape == (2, 32, 32, 32)
        torch.testing.assert_close(phi, mirrored[..., 8:40, 8:40])
        assert (phi - plain.decode(z)).abs()[..., :4, :].max() > 1e-3  # the border sees the mirror, not zeros
        # training renders through the same padded field as inference
        inp = torch.rand(1, 3, 32, 32) * 2 - 1
        coord, cell = make_query((24, 24), batch=1)
        rgb, _ = padded(inp, coord, cell)
        torch.testing.assert_close(rgb, padded.render(padded.decode(padded.encode(inp)), coord, cell))
        assert padded.decode(torch.randn(1, 3, 2, 3)).shape == (1, 32, 8, 12)  # reflection capped at side - 1


def test_decode_padding_is_checked_against_the_latent_side():
    with pytest.raises(ValueError, match=r"decode_padding must be in \[0, latent side 8\)"):
        tiny(decode_padding=8)
