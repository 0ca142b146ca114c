"""Import a CompVis latent-diffusion autoencoder (VQ-f4 / KL-f4 ...) as an infd autoencoder.

Our encoder/decoder use the LDM module layout, so the mapping is mostly the identity: the
architecture is read off the state dict's key names and shapes, the RGB head ``decoder.conv_out``
becomes the ``conv_head`` renderer (or is dropped when another renderer is chosen), and the
training-only ``loss.*`` weights (LPIPS, discriminator) are dropped.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_state_strict
from ..models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from infd.renderers import RendererConfig


def load_ldm_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a CompVis ``.ckpt`` (Lightning) or plain state-dict file, unpickled safely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"LDM checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"cannot load {path} with weights_only=True ({str(err).splitlines()[0]}); "
            "re-save its state_dict alone with torch.save(ckpt['state_dict'], 'sd.pt') in a trusted session") from None
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no tensor state_dict")
    return state


def infer_config(state: dict[str, torch.Tensor], input_size: int = 256,
                 renderer: RendererConfig | None = None) -> AutoencoderConfig:
    """An ``AutoencoderConfig`` matching the LDM autoencoder whose weights are ``state``."""
    if "encoder.conv_in.weight" not in state or "post_quant_conv.weight" not in state:
        raise CheckpointError("not an LDM autoencoder state dict (no encoder.conv_in / post_quant_conv)")
    channels = state["encoder.conv_in.weight"].shape[0]
    levels = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    blocks = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    mult = tuple(state[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // channels for i in range(levels))
    attn = tuple(sorted({input_size // 2 ** i for i in range(levels)
                         if any(k.startswith(f"encoder.down.{i}.attn.") for k in state)}, reverse=True))
    z_channels = state["post_quant_conv.weight"].shape[0]
    vq = "quantize.embedding.weight" in state
    renderer = renderer or RendererConfig("conv_head")
    return AutoencoderConfig(
        input_size=input_size, in_channels=state["encoder.conv_in.weight"].shape[1], channels=channels,
        channel_mult=mult, num_res_blocks=blocks, attn_resolutions=attn,
        mid_attention="encoder.mid.attn_1.q.weight" in state, z_channels=z_channels,
        bottleneck="vq" if vq else "kl", num_codes=state["quantize.embedding.weight"].shape[0] if vq else 8192,
        field_channels=channels * mult[0], renderer=renderer)


def convert_ldm_autoencoder(state: dict[str, torch.Tensor], input_size: int = 256,
                            renderer: RendererConfig | None = None) -> tuple[NeuralFieldAutoencoder, list[str]]:
    """Build our autoencoder from LDM weights; returns the model and the LDM keys that were dropped.

    With the default ``conv_head`` renderer the RGB head is kept, so the model decodes like LDM; with
    ``clif``/``liif`` the renderer starts from its own initialisation (fine-tune it in stage 1).
    """
    config = infer_config(state, input_size, renderer)
    model = NeuralFieldAutoencoder(config)
    keep_head = config.renderer.name == "conv_head"
    ours, dropped = {}, []
    for key, value in state.items():
        if key.startswith("loss.") or key.startswith("quantize.") and key != "quantize.embedding.weight":
            dropped.append(key)
        elif key.startswith("decoder.conv_out."):
            if keep_head:
                ours["renderer." + key[len("decoder."):]] = value
            else:
                dropped.append(key)
        else:
            ours[key] = value
    if not keep_head:  # the new renderer keeps its fresh initialisation
        ours.update({k: v for k, v in model.state_dict().items() if k.startswith("renderer.")})
    load_state_strict(model, ours, source="LDM checkpoint")
    return model, dropped
