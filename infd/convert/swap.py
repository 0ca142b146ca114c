"""Give a latent diffusion bundle another decoding side (field decoder and renderer), keeping its latent space.

The prior only knows the latents, so any part *after* the bottleneck can be fine-tuned with the encoder
and bottleneck frozen (``frozen:`` in the stage-1 config: a renderer alone after ``convert/lookup.py``, or
decoder and renderer, ``configs/train/ae_cpu_v6.yaml``) and put into the bundle. ``swap_decoding`` checks
that the autoencoder's encoder and bottleneck are the bundle's to the bit (otherwise the latents differ and
stage 2 must be re-cached and retrained), and returns the bundle with the autoencoder's post-quant conv,
decoder and renderer (weights, config, magnification range and decode padding).
"""
from __future__ import annotations

import dataclasses

from ..diffusion.bundle import LatentDiffusion
from ..models.autoencoder import NeuralFieldAutoencoder

LATENT_SPACE = ("encoder.", "quant_conv.", "quantize.")  # what makes z: the prior was trained on its output
DECODING = ("post_quant_conv.", "decoder.", "renderer.")  # what turns z into pixels: swappable


def differing_weights(a: NeuralFieldAutoencoder, b: NeuralFieldAutoencoder, prefixes: tuple[str, ...]) -> list[str]:
    """Names under ``prefixes`` whose weights differ between two autoencoders (missing in one, other shape or values)."""
    sa, sb = a.state_dict(), b.state_dict()
    keys = {k for k in sa.keys() | sb.keys() if k.startswith(prefixes)}
    return sorted(k for k in keys if k not in sa or k not in sb or sa[k].shape != sb[k].shape or not sa[k].equal(sb[k]))


def latent_space_differences(a: NeuralFieldAutoencoder, b: NeuralFieldAutoencoder) -> list[str]:
    """Weights of the encoder and bottleneck that differ between two autoencoders (names; empty: same latents)."""
    return differing_weights(a, b, LATENT_SPACE)


def changed_parts(a: NeuralFieldAutoencoder, b: NeuralFieldAutoencoder) -> list[str]:
    """The decoding parts (``post_quant_conv``, ``decoder``, ``renderer``) whose weights differ from a to b."""
    different = differing_weights(a, b, DECODING)
    return [part.rstrip(".") for part in DECODING if any(k.startswith(part) for k in different)]


def swap_decoding(bundle: LatentDiffusion, autoencoder: NeuralFieldAutoencoder) -> LatentDiffusion:
    """``bundle`` with ``autoencoder``'s decoder and renderer; ``ValueError`` when the latent spaces differ."""
    different = latent_space_differences(bundle.autoencoder, autoencoder)
    if different:
        more = f" and {len(different) - 1} more" if len(different) > 1 else ""
        raise ValueError(f"the autoencoder's latent space is not the bundle's ({different[0]}{more} differ): "
                         "re-cache the latents and train stage 2 on them instead")
    ae_config = autoencoder.config
    if dataclasses.replace(ae_config, renderer=bundle.config.autoencoder.renderer,
                           max_magnification=bundle.config.autoencoder.max_magnification,
                           decode_padding=bundle.config.autoencoder.decode_padding) != bundle.config.autoencoder:
        raise ValueError("the autoencoder's architecture is not the bundle's beyond its renderer")
    new_ae = NeuralFieldAutoencoder(ae_config)
    new_ae.load_state_dict(autoencoder.state_dict())
    config = dataclasses.replace(bundle.config, autoencoder=ae_config)
    return LatentDiffusion(config, new_ae.eval(), bundle.backbone).eval()
