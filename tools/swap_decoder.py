#!/usr/bin/env python3
"""Put an autoencoder's field decoder and renderer into a latent diffusion bundle whose latent space it shares.

Examples:
  python tools/swap_decoder.py infd/weights/default.safetensors wip/ae_cpu_v6.safetensors out/bundle.safetensors

For a decoder and/or renderer fine-tuned with the encoder and bottleneck frozen (``frozen:`` in
configs/train/ae_cpu_v5.yaml, ae_cpu_v6.yaml): the prior trained on the old latents still fits. An
autoencoder whose encoder or bottleneck differ from the bundle's is refused (its latents are different;
re-cache and train stage 2). The bundle's metadata (its step) is kept, with the autoencoder's path and
step added.
"""
from __future__ import annotations

from infd.cli import OneLineParser, UsageError, refuse_overwrite, run_tool


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="latent diffusion bundle (.safetensors)")
    parser.add_argument("autoencoder", help="autoencoder .safetensors with the same encoder and bottleneck")
    parser.add_argument("dst", help="output bundle (.safetensors)")
    args = parser.parse_args(argv)
    from infd.checkpoint import CheckpointError, load_model, read_checkpoint, save_model
    from infd.convert.swap import changed_parts, swap_decoding
    from infd.diffusion.bundle import LatentDiffusion
    from infd.models.autoencoder import load_autoencoder

    try:
        refuse_overwrite([args.dst], [args.bundle, args.autoencoder], what="dst")
        bundle = load_model(args.bundle)
        if not isinstance(bundle, LatentDiffusion):
            raise UsageError(f"{args.bundle} holds a {type(bundle).__name__}, not a latent diffusion bundle")
        autoencoder = load_autoencoder(args.autoencoder)
        swapped = swap_decoding(bundle, autoencoder)
        changed = changed_parts(bundle.autoencoder, autoencoder)
        metadata = {k: v for k, v in read_checkpoint(args.bundle)[1].items() if k not in ("format", "kind", "config")}
        metadata.update(decoding_from=str(args.autoencoder),
                        decoding_step=read_checkpoint(args.autoencoder)[1].get("step", "0"))
        save_model(swapped, args.dst, extra=metadata)
    except (CheckpointError, UsageError, OSError, ValueError) as err:
        return parser.fail(err)
    r = swapped.autoencoder.config.renderer
    print(f"wrote {args.dst}: {', '.join(changed) or 'nothing'} changed, renderer {r.name} {r.args}, "
          f"from {args.autoencoder}")
    return 0


if __name__ == "__main__":
    run_tool(main)
