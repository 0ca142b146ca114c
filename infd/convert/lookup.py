"""Switch a trained CLIF autoencoder between the nearest and the bilinear field lookup.

The two lookups feed the same CNN: nearest gives ``[phi[k], rel_y, rel_x, cell_y, cell_x]`` per query,
bilinear ``[bilinear phi, cell_y, cell_x]`` (``renderers.clif``). Switching keeps every weight except
the first conv's columns for the relative coordinate (dropped, or added as zeros going back), so the
encoder, the decoder and the latent space are untouched: a diffusion prior trained on the old latents
still fits, and fine-tuning the renderer alone (``frozen: [encoder, ...]`` in the stage-1 config) is
enough. At 1x (one query per field cell, on the cell centres) both lookups give the same input (the
field vector itself, a zero relative coordinate), so the switched model renders the same image there.
"""
from __future__ import annotations

import dataclasses

import torch

from ..models.autoencoder import NeuralFieldAutoencoder
from ..renderers.factory import RendererConfig


@torch.no_grad()
def switch_lookup(model: NeuralFieldAutoencoder, lookup: str) -> NeuralFieldAutoencoder:
    """A copy of ``model`` whose CLIF renderer uses ``lookup`` (``nearest`` or ``bilinear``)."""
    c = model.config
    if c.renderer.name != "clif":
        raise ValueError(f"only a CLIF renderer has a lookup to switch, this model's is {c.renderer.name!r}")
    old = model.renderer.config.lookup
    if lookup == old:
        raise ValueError(f"the renderer already uses the {lookup} lookup")
    renderer = RendererConfig(c.renderer.name, {**c.renderer.args, "lookup": lookup})
    new = NeuralFieldAutoencoder(dataclasses.replace(c, renderer=renderer))
    state = model.state_dict()
    C = model.renderer.config.field_channels
    w = state["renderer.conv_in.weight"]  # (D, in_channels, 3, 3)
    if lookup == "bilinear":  # drop the relative coordinate (channels C, C + 1)
        state["renderer.conv_in.weight"] = torch.cat([w[:, :C], w[:, C + 2:]], 1)
    else:  # insert zero weights for it
        state["renderer.conv_in.weight"] = torch.cat([w[:, :C], w.new_zeros(w.shape[0], 2, 3, 3), w[:, C:]], 1)
    new.load_state_dict(state)
    return new.train(model.training)
