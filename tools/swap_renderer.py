#!/usr/bin/env python3
"""Put an autoencoder's renderer into a latent diffusion bundle whose latent space it shares.

Examples:
  python tools/swap_renderer.py infd/weights/default.safetensors wip/ae_cpu_v5.safetensors out/bundle.safetensors

For a renderer fine-tuned with the encoder and decoder frozen (configs/train/ae_cpu_v5.yaml): the prior
trained on the old latents still fits. An autoencoder whose encoder, bottleneck or decoder differ from
the bundle's is refused (its latents are different; re-cache and train stage 2). The bundle's metadata
(its step) is kept, with the autoencoder's path and step added.
"""
from __future__ import annotations

from infd.cli import OneLineParser, UsageError, refuse_overwrite, run_tool


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="latent diffusion bundle (.safetensors)")
    parser.add_argument("autoencoder", help="autoencoder .safetensors with the same encoder and decoder")
    parser.add_argument("dst", help="output bundle (.safetensors)")
    args = parser.parse_args(argv)
    from infd.checkpoint import CheckpointError, load_model, read_checkpoint, save_model
    from infd.convert.swap import swap_renderer
    from infd.diffusion.bundle import LatentDiffusion
    from infd.models.autoencoder import load_autoencoder

    try:
        refuse_overwrite([args.dst], [args.bundle, args.autoencoder], what="dst")
        bundle = load_model(args.bundle)
        if not isinstance(bundle, LatentDiffusion):
            raise UsageError(f"{args.bundle} holds a {type(bundle).__name__}, not a latent diffusion bundle")
        autoencoder = load_autoencoder(args.autoencoder)
        swapped = swap_renderer(bundle, autoencoder)
        metadata = {k: v for k, v in read_checkpoint(args.bundle)[1].items() if k not in ("format", "kind", "config")}
        metadata.update(renderer_from=str(args.autoencoder),
                        renderer_step=read_checkpoint(args.autoencoder)[1].get("step", "0"))
        save_model(swapped, args.dst, extra=metadata)
    except (CheckpointError, UsageError, OSError, ValueError) as err:
        return parser.fail(err)
    r = swapped.autoencoder.config.renderer
    print(f"wrote {args.dst}: renderer {r.name} {r.args} from {args.autoencoder}")
    return 0


if __name__ == "__main__":
    run_tool(main)
