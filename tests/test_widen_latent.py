"""Widening a trained latent (infd/convert/widen.py, tools/widen_latent.py): same renders, new channels that train."""
import dataclasses

import pytest
import torch

from infd.checkpoint import load_model, read_checkpoint, save_model
from infd.convert.widen import widen_latent
from infd.models.autoencoder import NeuralFieldAutoencoder
from infd.renderers.coords import make_coord

from eval_testing import tiny_autoencoder
from tool_testing import load_tool


def kl_autoencoder(bottleneck="kl", seed=0) -> NeuralFieldAutoencoder:
    config = dataclasses.replace(tiny_autoencoder().config, bottleneck=bottleneck)
    torch.manual_seed(seed)
    model = NeuralFieldAutoencoder(config)
    with torch.no_grad():  # trained-looking 1x1 convs: not the identity the widening adds for new channels
        for conv in (model.quant_conv, model.post_quant_conv):
            conv.weight.normal_(0, 0.5), conv.bias.normal_(0, 0.1)
    return model.eval()


def render(model, x):
    coord = make_coord((24, 24)).unsqueeze(0).expand(x.shape[0], -1, -1, -1)
    cell = torch.full((x.shape[0], 2), 2 / 24)
    with torch.no_grad():
        moments = model._moments(x)
        return model.render(model.decode(model.encode(x)), coord, cell), moments


@pytest.mark.parametrize("bottleneck", ["kl", "none"])
def test_widened_model_renders_exactly_what_the_narrow_one_did(bottleneck):
    narrow = kl_autoencoder(bottleneck)
    wide = widen_latent(narrow, 5)
    assert wide.config.z_channels == 5 and narrow.config.z_channels == 3
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    (rgb_n, mom_n), (rgb_w, mom_w) = render(narrow, x), render(wide, x)
    assert torch.allclose(rgb_n, rgb_w, atol=1e-5)
    # the same weights, but a 1x1 conv with 5 outputs may take another kernel than with 3 (oneDNN blocking)
    torch.testing.assert_close(wide.encode(x)[:, :3], narrow.encode(x), atol=1e-6, rtol=0)
    if bottleneck == "kl":  # the old log-variances moved behind the new means, new ones are constant
        assert torch.allclose(mom_w[:, 5:8], mom_n[:, 3:], atol=1e-5)
        assert torch.allclose(mom_w[:, 8:], torch.full_like(mom_w[:, 8:], -5.0), atol=1e-5)
    assert mom_w[:, 3:5].std() > 0.01  # the new means are not constant: they carry a signal to learn from


def test_new_channels_get_gradient_and_start_carrying_information():
    wide = widen_latent(kl_autoencoder(), 4).train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    coord = make_coord((32, 32)).unsqueeze(0).expand(2, -1, -1, -1)
    rgb, _ = wide(x, coord, torch.full((2, 2), 2 / 32))
    (rgb - x).abs().mean().backward()
    new_weights = wide.decoder.conv_in.weight.grad[:, 3:]
    assert new_weights.abs().sum() > 0  # the decoder's zero weights on the new channel move at the first step


def test_refuses_vq_and_shrinking():
    with pytest.raises(ValueError, match="only KL and plain"):
        widen_latent(tiny_autoencoder(), 6)  # configs/ae/tiny.yaml is VQ
    with pytest.raises(ValueError, match="must grow"):
        widen_latent(kl_autoencoder(), 3)


def test_tool_keeps_the_step_and_never_overwrites_its_input(tmp_path, capsys):
    tool = load_tool("widen_latent")
    src, dst = tmp_path / "ae.safetensors", tmp_path / "wide.safetensors"
    save_model(kl_autoencoder(), src, extra={"step": "1234"})
    before = src.read_bytes()
    assert tool.main([str(src), "6", str(dst)]) == 0
    assert "z 3" in capsys.readouterr().out
    assert load_model(dst).config.z_channels == 6 and read_checkpoint(dst)[1]["step"] == "1234"
    assert tool.main([str(src), "6", str(src)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "missing.safetensors"), "6", str(dst)]) == 2
    assert tool.main([str(src), "2", str(tmp_path / "w2.safetensors")]) == 2
    assert "must grow" in capsys.readouterr().err
    assert src.read_bytes() == before
