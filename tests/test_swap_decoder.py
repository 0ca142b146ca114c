"""tools/swap_decoder.py: a bundle takes a decoder and renderer fine-tuned on its own latent space and
refuses ones trained on another; the prior and the latents stay, only the fields and pixels change."""
import dataclasses

import pytest
import torch

from inverse_testing import make_bundle
from tool_testing import load_tool
from infd.checkpoint import load_model, read_checkpoint, save_model
from infd.convert.lookup import switch_lookup
from infd.convert.swap import changed_parts, latent_space_differences, swap_decoding
from infd.models.autoencoder import NeuralFieldAutoencoder
from infd.renderers.coords import make_query_grid


def fine_tuned(bundle, parts=("renderer",)):
    """The bundle's autoencoder switched to the bilinear lookup, ``parts`` perturbed (as training would)."""
    ae = switch_lookup(bundle.autoencoder, "bilinear")
    with torch.no_grad():
        for part in parts:
            for p in getattr(ae, part).parameters():
                p.add_(0.01 * torch.randn_like(p))
    return ae


def test_the_bundle_renders_with_the_new_renderer_and_keeps_its_prior():
    bundle = make_bundle()
    ae = fine_tuned(bundle)
    swapped = swap_decoding(bundle, ae)
    assert changed_parts(bundle.autoencoder, ae) == ["renderer"]
    assert swapped.autoencoder.config.renderer.args["lookup"] == "bilinear"
    assert swapped.config.autoencoder == swapped.autoencoder.config
    assert all(torch.equal(v, bundle.backbone.state_dict()[k]) for k, v in swapped.backbone.state_dict().items())
    z = torch.randn(1, bundle.config.z_channels, bundle.config.latent_size, bundle.config.latent_size)
    with torch.no_grad():
        phi = swapped.decode(z)
        assert torch.equal(phi, bundle.decode(z))
        grid, cell = make_query_grid((48, 48))
        assert torch.equal(swapped.renderer(phi, grid, cell), ae.renderer(phi, grid, cell))


def test_a_fine_tuned_decoder_changes_the_fields_not_the_latents():
    bundle = make_bundle()
    ae = fine_tuned(bundle, ("decoder", "renderer"))
    swapped = swap_decoding(bundle, ae)
    assert changed_parts(bundle.autoencoder, ae) == ["decoder", "renderer"]
    x = torch.rand(1, 3, bundle.autoencoder.config.input_size, bundle.autoencoder.config.input_size) * 2 - 1
    z = torch.randn(1, bundle.config.z_channels, bundle.config.latent_size, bundle.config.latent_size)
    with torch.no_grad():
        assert torch.equal(swapped.autoencoder.encode(x), bundle.autoencoder.encode(x))
        assert torch.equal(swapped.decode(z), ae.decode(z)) and not torch.equal(swapped.decode(z), bundle.decode(z))


def test_another_latent_space_is_refused():
    bundle, other = make_bundle(), make_bundle(seed=1)
    assert "encoder.conv_in.weight" in latent_space_differences(bundle.autoencoder, other.autoencoder)
    assert not any(k.startswith("decoder.") for k in latent_space_differences(bundle.autoencoder, other.autoencoder))
    with pytest.raises(ValueError, match="latent space is not the bundle's"):
        swap_decoding(bundle, other.autoencoder)


def test_the_tool_keeps_the_metadata_and_never_writes_an_input(tmp_path, capsys):
    tool = load_tool("swap_decoder")
    bundle = make_bundle()
    src = save_model(bundle, tmp_path / "bundle.safetensors", extra={"step": "77"})
    ae = save_model(fine_tuned(bundle), tmp_path / "ae.safetensors", extra={"step": "5"})
    assert tool.main([str(src), str(ae), str(tmp_path / "out.safetensors")]) == 0
    assert "renderer changed, renderer clif" in capsys.readouterr().out
    metadata = read_checkpoint(tmp_path / "out.safetensors")[1]
    assert metadata["step"] == "77" and metadata["decoding_step"] == "5"
    assert load_model(tmp_path / "out.safetensors").autoencoder.config.renderer.args["lookup"] == "bilinear"
    before = src.read_bytes()
    for args in ([str(src), str(ae), str(src)], [str(ae), str(ae), str(tmp_path / "x.safetensors")]):
        assert tool.main(args) == 2
        assert capsys.readouterr().err.count("error: ") == 1
    assert src.read_bytes() == before and not (tmp_path / "x.safetensors").exists()


def test_the_decode_padding_travels_with_the_decoder():
    bundle = make_bundle()
    tuned = fine_tuned(bundle, ("decoder",))
    ae = NeuralFieldAutoencoder(dataclasses.replace(tuned.config, decode_padding=1))
    ae.load_state_dict(tuned.state_dict())
    swapped = swap_decoding(bundle, ae)
    assert swapped.autoencoder.config.decode_padding == 1 == swapped.config.autoencoder.decode_padding
    z = torch.randn(1, bundle.config.z_channels, bundle.config.latent_size, bundle.config.latent_size)
    with torch.no_grad():
        assert torch.equal(swapped.decode(z), ae.decode(z))
