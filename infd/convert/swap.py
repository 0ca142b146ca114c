"""Give a latent diffusion bundle another renderer, keeping its latent space.

A renderer fine-tuned with the encoder and decoder frozen (``frozen:`` in the stage-1 config, e.g. after
``convert/lookup.py``) renders the same fields better; the bundle's prior, trained on latents of that
encoder, still fits. ``swap_renderer`` checks that the autoencoder's encoder, bottleneck and decoder are
the bundle's to the bit (otherwise the latents differ and stage 2 must be re-cached and retrained), and
returns the bundle with the new renderer (weights, config and magnification range).
"""
from __future__ import annotations

import dataclasses

from ..diffusion.bundle import LatentDiffusion
from ..models.autoencoder import NeuralFieldAutoencoder


def latent_space_differences(a: NeuralFieldAutoencoder, b: NeuralFieldAutoencoder) -> list[str]:
    """Weights outside the renderer that differ between two autoencoders (names; empty: the same latent space)."""
    sa, sb = a.state_dict(), b.state_dict()
    keys = {k for k in sa.keys() | sb.keys() if not k.startswith("renderer.")}
    return sorted(k for k in keys if k not in sa or k not in sb or sa[k].shape != sb[k].shape or not sa[k].equal(sb[k]))


def swap_renderer(bundle: LatentDiffusion, autoencoder: NeuralFieldAutoencoder) -> LatentDiffusion:
    """``bundle`` with ``autoencoder``'s renderer; ``ValueError`` when the latent spaces differ."""
    different = latent_space_differences(bundle.autoencoder, autoencoder)
    if different:
        more = f" and {len(different) - 1} more" if len(different) > 1 else ""
        raise ValueError(f"the autoencoder's latent space is not the bundle's ({different[0]}{more} differ): "
                         "re-cache the latents and train stage 2 on them instead")
    ae_config = dataclasses.replace(bundle.config.autoencoder, renderer=autoencoder.config.renderer,
                                    max_magnification=autoencoder.config.max_magnification)
    new_ae = NeuralFieldAutoencoder(ae_config)
    new_ae.load_state_dict({**bundle.autoencoder.state_dict(),
                            **{k: v for k, v in autoencoder.state_dict().items() if k.startswith("renderer.")}})
    config = dataclasses.replace(bundle.config, autoencoder=ae_config)
    return LatentDiffusion(config, new_ae.eval(), bundle.backbone).eval()
