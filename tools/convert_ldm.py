#!/usr/bin/env python3
"""Convert a CompVis latent-diffusion autoencoder checkpoint (VQ-f4, KL-f4, ...) to an infd checkpoint.

Examples:
  python tools/convert_ldm.py vq-f4/model.ckpt ae_vq_f4.safetensors
  python tools/convert_ldm.py kl-f4/model.ckpt ae_kl_f4_clif.safetensors --renderer clif

With the default --renderer conv_head the LDM RGB head is kept (the model decodes exactly like LDM at
the field's resolution); with clif or liif the decoder weights are imported and the renderer is new,
to be trained in stage 1 (tools/train.py ae with init_from pointing at the converted file).
"""
from __future__ import annotations

import argparse
import sys

from infd.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="CompVis .ckpt / state-dict .pt / .safetensors")
    parser.add_argument("dst", help="output .safetensors")
    parser.add_argument("--renderer", default="conv_head", choices=["conv_head", "clif", "liif"])
    parser.add_argument("--input-size", type=int, default=256, help="the encoder's input size (default 256)")
    args = parser.parse_args(argv)
    from infd.checkpoint import CheckpointError, save_model
    from infd.convert.ldm import convert_ldm_autoencoder, load_ldm_state_dict
    from infd.renderers import RendererConfig

    try:
        state = load_ldm_state_dict(args.src)
        model, dropped = convert_ldm_autoencoder(state, args.input_size, RendererConfig(args.renderer))
        save_model(model, args.dst, extra={"converted_from": str(args.src)})
    except (CheckpointError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    c = model.config
    print(f"wrote {args.dst}: {c.bottleneck}-f{c.factor}, channels {c.channels} x {list(c.channel_mult)}, "
          f"z {c.z_channels}, renderer {c.renderer.name}; dropped {len(dropped)} training-only keys")
    return 0


if __name__ == "__main__":
    run_tool(main)
