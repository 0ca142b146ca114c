#!/usr/bin/env python3
"""Render samples of an infd model at any resolution, into PNG, JPEG, WebP, 16-bit PNG or tiled TIFF.

The work is done by ``infd.rendering``; this script parses the arguments, shows progress and turns
every invalid request into one line on stderr and exit code 2 (checked before anything is written).
"""
from __future__ import annotations

import argparse
import sys

from infd.cli import OneLineParser, add_deprecated_alias, add_sampler_arguments, interrupt_on_sigterm, run_tool
from infd.diffusion.sampling import CLASS_PER_SEED, DEFAULT_CFG_SCALE, DEFAULT_STEPS

EXAMPLES = """\
examples:
  tools/render.py --size 1024 --out out/sample.png                  one 1024x1024 sample
  tools/render.py --size 3840x2160 --seed 0-7 --out out/uhd/        8 UHD samples, out/uhd/seed0000.png ...
  tools/render.py --size 65536 --region 30000,30000,1024,1024 --out out/zoom.png
                                                                  a 1024x1024 window of a 65536^2 image
  tools/render.py --size 32768 --out out/huge.tif --bits 16         streamed to a tiled BigTIFF, tile by tile
  tools/render.py --size 3840x2160 --canvas grow --out out/uhd.png
                                                                  a 16:9 latent canvas, sampled in windows
  tools/render.py --size 8192x2048 --canvas grow --out out/panorama.png
                                                                  a 4:1 panorama
  tools/render.py --size 2048 --also-sizes 256,1024 --out out/sizes.png
                                                                  one sample at 256, 1024 and 2048, side by side
  torchrun --nproc_per_node 4 tools/render.py --size 16384 --out out/big.tif
                                                                  4 processes share the tiles of one image
  accelerate launch tools/render.py --size 1024 --num-samples 64 --out out/many/
                                                                  64 samples split across the GPUs
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="render.py", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="infd .safetensors checkpoint (default: the bundled model)")
    p.add_argument("--size", default="1024", help="N (square) or WIDTHxHEIGHT of the image (default 1024)")
    p.add_argument("--region", help="x,y,w,h: render only this window of the --size image (pixels)")
    p.add_argument("--num", "--num-samples", dest="num", type=int,
                   help="number of samples (seeds --seed, --seed + 1, ...); under torchrun/accelerate "
                        "write --num-samples (their own parsers take --num for --numa-binding/--num_processes)")
    p.add_argument("--seed", default="0", help="seed, range A-B or list 1,5,9 (default 0)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"sampling steps (diffusion models; default {DEFAULT_STEPS})")
    add_sampler_arguments(p, class_label=CLASS_PER_SEED, cfg_scale=DEFAULT_CFG_SCALE)  # the model card's curve
    add_deprecated_alias(p, "--guidance", "--cfg-scale", dest="cfg_scale", type=float)
    p.add_argument("--tile", type=int, help="tile side in pixels (default: from free memory)")
    p.add_argument("--batch", type=int, default=4, help="samples rendered together (default 4; TIFF: 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--dtype", default="fp32", help="fp32, or bf16/fp16 autocast (default fp32)")
    p.add_argument("--bits", type=int, default=8, help="8, or 16 for .png/.tif outputs (default 8)")
    p.add_argument("--compression", default="none",
                   help="TIFF outputs: none (default), deflate, lzma, or zstd/jpeg with imagecodecs installed")
    p.add_argument("--out", default="out/sample.png",
                   help="output file (.png .jpg .webp .tif) or folder (PNGs); default out/sample.png")
    p.add_argument("--also-sizes", help="e.g. 256,1024: also render each sample at these sizes, one grid")
    p.add_argument("--max-magnification", type=float,
                   help="largest output side / field side rendered natively; beyond it the native render is "
                        "resampled bicubically (default: the checkpoint's record, 4 if it has none; 1 gives "
                        "a bicubic upsampling of the field-resolution render)")
    g = p.add_argument_group("canvas (non-square outputs and canvases larger than one latent)")
    g.add_argument("--canvas", default="stretch",
                   help="stretch (default: one square latent on the output grid), crop (one square latent "
                        "rendered at the longer side, the centred window written) or grow (a latent canvas of "
                        "the output's aspect, sampled jointly in windows of the trained size)")
    g.add_argument("--canvas-scale", type=float, default=1.0,
                   help="grow: shorter latent side / the trained latent side (default 1; 2 = 4x the content)")
    g.add_argument("--window-mode", default="overlap",
                   help="grow: overlap (default; fixed windows every --window-stride, tent-weighted average) or "
                        "shifted (non-overlapping windows moved every step, UNet priors)")
    g.add_argument("--window-stride", type=int,
                   help="grow, overlap windows: latent positions between windows (default three quarters of a window)")
    g.add_argument("--window-batch", type=int, default=8, help="grow: windows per backbone call (default 8)")
    g.add_argument("--labels", help="grow: a layout file of class_label boxes (a class per region of the "
                                    "canvas; see infd/inverse/layout.py)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    fail = parser.fail

    from infd.cli import UsageError
    from infd.rendering.formats import SinkError
    from infd.rendering.request import RequestError, make_request

    try:  # everything that can be checked without torch or the model, before anything is written
        request = make_request(
            size=args.size, out=args.out, seed=args.seed, num=args.num, region=args.region,
            also_sizes=args.also_sizes, tile=args.tile, batch=args.batch, bits=args.bits, device=args.device,
            dtype=args.dtype, steps=args.steps, sampler=args.sampler, cfg_scale=args.cfg_scale,
            class_label=args.class_label, checkpoint=args.checkpoint,
            max_magnification=args.max_magnification, compression=args.compression, canvas=args.canvas,
            canvas_scale=args.canvas_scale, window_mode=args.window_mode, window_stride=args.window_stride,
            window_batch=args.window_batch, labels=args.labels)
    except (UsageError, SinkError) as err:
        return fail(err)

    interrupt_on_sigterm()
    from infd.checkpoint import CheckpointError
    from infd.config import ConfigError
    from infd.rendering.distributed import DistContext, init_distributed
    from infd.devices import device_type
    from infd.progress import format_seconds, progress
    from infd.rendering.job import check_canvas, run_request
    from infd.rendering.sampling import check_sampling, has_prior, load_render_model

    dist = DistContext()
    try:
        dist = init_distributed(device_type(request.device))
        model = load_render_model(request.checkpoint)
        check_sampling(model, request.sampling)  # before any file is opened
        check_canvas(model, request)
        if dist.is_main and not has_prior(model):
            print("note: this model has no diffusion prior: latents are drawn from N(0, I) "
                  "(--steps, --sampler, --cfg-scale and --class are not used)", file=sys.stderr)

        def make_bar(desc: str, total: int):
            tiles = desc == "tiles"
            unit = {"tiles": "tile", "windows": "window"}.get(desc, "step")
            return progress(desc, total, unit, enabled=dist.is_main, position=int(tiles),
                            estimate=announce_long_render if tiles else None)

        def announce_long_render(remaining_s: float) -> None:
            h, w = request.file_size
            raw = h * w * 3 * request.bits // 8 * len(request.outputs)
            print(f"note: about {format_seconds(remaining_s)} of rendering left for {len(request.outputs)} x {w}x{h} "
                  f"({raw / 2**30:.2f} GiB of pixels uncompressed)", file=sys.stderr, flush=True)

        written = run_request(request, model, dist, make_bar)
        h, w = request.file_size
        for path in written:
            print(f"wrote {path} ({w}x{h})")
        return 0
    except (RequestError, SinkError, CheckpointError, ConfigError) as err:
        return fail(err)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; no partial file was left at the output path", file=sys.stderr)
        return 130
    finally:
        dist.close()


if __name__ == "__main__":
    run_tool(main)
