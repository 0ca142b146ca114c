"""LDM weight import, on a synthetic state dict with the CompVis key names and shapes."""
import pytest
import torch

from infd.checkpoint import CheckpointError, load_model, save_model
from infd.convert.ldm import convert_ldm_autoencoder, load_ldm_state_dict
from infd.renderers import RendererConfig


def _resblock(prefix, cin, cout):
    keys = {f"{prefix}.norm1.weight": (cin,), f"{prefix}.norm1.bias": (cin,),
            f"{prefix}.conv1.weight": (cout, cin, 3, 3), f"{prefix}.conv1.bias": (cout,),
            f"{prefix}.norm2.weight": (cout,), f"{prefix}.norm2.bias": (cout,),
            f"{prefix}.conv2.weight": (cout, cout, 3, 3), f"{prefix}.conv2.bias": (cout,)}
    if cin != cout:
        keys.update({f"{prefix}.nin_shortcut.weight": (cout, cin, 1, 1), f"{prefix}.nin_shortcut.bias": (cout,)})
    return keys


def _attn(prefix, c):
    keys = {f"{prefix}.norm.weight": (c,), f"{prefix}.norm.bias": (c,)}
    for name in ("q", "k", "v", "proj_out"):
        keys.update({f"{prefix}.{name}.weight": (c, c, 1, 1), f"{prefix}.{name}.bias": (c,)})
    return keys


def compvis_autoencoder_shapes(ch=32, mult=(1, 2, 2), nres=1, z=3, vq=True, codes=64, attn_levels=()):
    """Key names and shapes of a CompVis AutoencoderKL / VQModel, written from the LDM layout."""
    shapes = {"encoder.conv_in.weight": (ch, 3, 3, 3), "encoder.conv_in.bias": (ch,)}
    cin = ch
    for i, m in enumerate(mult):
        for j in range(nres):
            shapes.update(_resblock(f"encoder.down.{i}.block.{j}", cin, ch * m))
            cin = ch * m
            if i in attn_levels:
                shapes.update(_attn(f"encoder.down.{i}.attn.{j}", cin))
        if i != len(mult) - 1:
            shapes.update({f"encoder.down.{i}.downsample.conv.weight": (cin, cin, 3, 3),
                           f"encoder.down.{i}.downsample.conv.bias": (cin,)})
    zc = z if vq else 2 * z
    for part in ("encoder", "decoder"):
        top = ch * mult[-1]
        shapes.update(_resblock(f"{part}.mid.block_1", top, top))
        shapes.update(_attn(f"{part}.mid.attn_1", top))
        shapes.update(_resblock(f"{part}.mid.block_2", top, top))
    shapes.update({"encoder.norm_out.weight": (cin,), "encoder.norm_out.bias": (cin,),
                   "encoder.conv_out.weight": (zc, cin, 3, 3), "encoder.conv_out.bias": (zc,),
                   "quant_conv.weight": (zc, zc, 1, 1), "quant_conv.bias": (zc,),
                   "post_quant_conv.weight": (z, z, 1, 1), "post_quant_conv.bias": (z,),
                   "decoder.conv_in.weight": (ch * mult[-1], z, 3, 3), "decoder.conv_in.bias": (ch * mult[-1],)})
    cin = ch * mult[-1]
    for i in reversed(range(len(mult))):
        for j in range(nres + 1):
            shapes.update(_resblock(f"decoder.up.{i}.block.{j}", cin, ch * mult[i]))
            cin = ch * mult[i]
            if i in attn_levels:
                shapes.update(_attn(f"decoder.up.{i}.attn.{j}", cin))
        if i != 0:
            shapes.update({f"decoder.up.{i}.upsample.conv.weight": (cin, cin, 3, 3),
                           f"decoder.up.{i}.upsample.conv.bias": (cin,)})
    shapes.update({"decoder.norm_out.weight": (cin,), "decoder.norm_out.bias": (cin,),
                   "decoder.conv_out.weight": (3, cin, 3, 3), "decoder.conv_out.bias": (3,),
                   "loss.logvar": (), "loss.discriminator.main.0.weight": (64, 3, 4, 4)})
    if vq:
        shapes["quantize.embedding.weight"] = (codes, z)
    return shapes


@pytest.mark.parametrize("vq", [True, False])
def test_every_ldm_tensor_lands_in_place(vq, tmp_path):
    g = torch.Generator().manual_seed(1)
    state = {k: torch.randn(s, generator=g) for k, s in compvis_autoencoder_shapes(vq=vq, attn_levels=(2,)).items()}
    torch.save({"state_dict": state, "global_step": 10}, tmp_path / "model.ckpt")
    model, dropped = convert_ldm_autoencoder(load_ldm_state_dict(tmp_path / "model.ckpt"), input_size=32)
    c = model.config
    assert (c.channels, c.channel_mult, c.num_res_blocks, c.z_channels) == (32, (1, 2, 2), 1, 3)
    assert c.bottleneck == ("vq" if vq else "kl") and c.attn_resolutions == (8,) and c.factor == 4
    ours = model.state_dict()
    for key, value in state.items():
        if key.startswith("loss."):
            assert key in dropped
            continue
        target = "renderer.conv_out." + key.split(".")[-1] if key.startswith("decoder.conv_out.") else key
        assert torch.equal(ours[target], value), key
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert model.encode(x).shape == (1, 3, 8, 8)


def test_new_renderer_and_round_trip(tmp_path):
    state = {k: torch.randn(s) for k, s in compvis_autoencoder_shapes().items()}
    model, dropped = convert_ldm_autoencoder(state, input_size=32, renderer=RendererConfig("clif", {"hidden": 16}))
    assert "decoder.conv_out.weight" in dropped and model.renderer.radius == 6
    loaded = load_model(save_model(model, tmp_path / "ae.safetensors"))
    assert torch.equal(loaded.state_dict()["decoder.up.0.block.1.conv2.weight"], state["decoder.up.0.block.1.conv2.weight"])


def test_bad_inputs(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_ldm_state_dict(tmp_path / "none.ckpt")
    with pytest.raises(CheckpointError, match="not an LDM autoencoder"):
        convert_ldm_autoencoder({"model.diffusion_model.x": torch.zeros(1)})
