"""Widen a trained autoencoder's latent (more ``z_channels``) without changing what it computes.

A stage-1 model whose latent is too narrow drops information it cannot fit (the 3-channel f4 models
of ``configs/train/ae_cpu_v3.yaml`` kept luminance and green-magenta but no red-blue axis). Training a
wider latent from scratch throws the run away; widening keeps it (Net2Net, Chen et al. 2016):

- ``encoder.conv_out`` gains rows for the new means (a fresh default init) and the new log-variances
  (zero weights, a bias of ``logvar_init``: noise as small as trained channels carry, so the decoder
  sees a signal rather than prior noise it would learn to ignore), ``quant_conv`` / ``post_quant_conv``
  pass the new channels through unchanged (identity), and
- ``decoder.conv_in`` reads the new channels with zero weights, so the widened model renders exactly
  what the old one did; the first optimiser step gives those weights a gradient and the new channels
  start carrying what the loss asks for.

KL and plain bottlenecks only (a VQ codebook has no function-preserving widening).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..models.autoencoder import NeuralFieldAutoencoder


def _moment_index(i: int, old: int, new: int, kl: bool) -> int:
    """Where old moment channel ``i`` goes: KL moments are ``[means, logvars]``, so log-variances move."""
    return i if not kl or i < old else i - old + new


@torch.no_grad()
def widen_latent(model: NeuralFieldAutoencoder, z_channels: int, seed: int = 0,
                 logvar_init: float = -5.0) -> NeuralFieldAutoencoder:
    """A new model with ``z_channels`` latent channels that renders exactly what ``model`` renders."""
    c = model.config
    if c.bottleneck not in ("kl", "none"):
        raise ValueError(f"only KL and plain bottlenecks can be widened, not {c.bottleneck!r}")
    if z_channels <= c.z_channels:
        raise ValueError(f"z_channels must grow: the model has {c.z_channels}, asked for {z_channels}")
    torch.manual_seed(seed)
    wide = NeuralFieldAutoencoder(dataclasses.replace(c, z_channels=z_channels))
    old, new, kl = c.z_channels, z_channels, c.bottleneck == "kl"
    src, dst = model.state_dict(), wide.state_dict()
    changed = {"encoder.conv_out.weight", "encoder.conv_out.bias", "quant_conv.weight", "quant_conv.bias",
               "post_quant_conv.weight", "post_quant_conv.bias", "decoder.conv_in.weight"}
    for key, value in src.items():
        if key not in changed:
            dst[key].copy_(value)
    moments_old = 2 * old if kl else old
    index = torch.tensor([_moment_index(i, old, new, kl) for i in range(moments_old)])
    fresh = torch.tensor(sorted(set(range(dst["quant_conv.bias"].numel())) - set(index.tolist())))

    # Encoder head: old rows in their new places; new means keep the fresh init, new log-variances are
    # constant (the 3-channel v3 model's trained channels average -4.9).
    w, b = dst["encoder.conv_out.weight"], dst["encoder.conv_out.bias"]
    w[index], b[index] = src["encoder.conv_out.weight"], src["encoder.conv_out.bias"]
    if kl:
        logvar_new = torch.arange(new + old, 2 * new)
        w[logvar_new] = 0.0
        b[logvar_new] = logvar_init

    def embed(key: str, idx: torch.Tensor, extra: torch.Tensor):
        """A 1x1 conv that maps old channels as before and passes ``extra`` channels through."""
        w, b = dst[key + ".weight"], dst[key + ".bias"]
        w.zero_(), b.zero_()
        w[idx[:, None], idx[None, :]] = src[key + ".weight"]
        b[idx] = src[key + ".bias"]
        w[extra, extra] = 1.0

    embed("quant_conv", index, fresh)
    embed("post_quant_conv", torch.arange(old), torch.arange(old, new))
    w = dst["decoder.conv_in.weight"]
    w.zero_()
    w[:, :old] = src["decoder.conv_in.weight"]
    wide.load_state_dict(dst)
    return wide


def describe(model: nn.Module) -> str:
    c = model.config
    return f"{c.bottleneck}-f{c.factor}, z {c.z_channels}, channels {c.channels} x {list(c.channel_mult)}"
