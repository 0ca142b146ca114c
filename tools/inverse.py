#!/usr/bin/env python3
"""Solve an inverse problem at any scale from a layout file: CLIP prompts on boxes, super-resolution, inpainting.

The work is done by ``infd.inverse``; this script parses the arguments, shows progress and turns every
invalid request (bad layout, sizes, paths, missing weights) into one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys

from infd.cli import OneLineParser, add_deprecated_alias, add_sampler_arguments, interrupt_on_sigterm, run_tool

EXAMPLES = """\
examples:
  tools/inverse.py --layout configs/inverse/super_resolution.yaml --solver optimize --optimize-field \\
      --checkpoint bundle.safetensors --size 1024 --also-size 256 --out out/sr.png
                                    a low-resolution photo matched at its size, rendered at 1024 (and 256)
  tools/inverse.py --layout configs/inverse/inpainting.yaml --solver optimize --optimize-field --out out/fill.png
  tools/inverse.py --layout configs/inverse/two_prompts.yaml --clip clip-b32 --steps 100 --size 2048 \\
      --out out/scene.png         two prompts on two boxes, guided sampling; writes out/scene_layout.png too

A layout is a YAML/JSON file with a list of terms (see configs/inverse/ and infd/inverse/layout.py).
CLIP weights are a local transformers CLIPModel directory (save_pretrained); nothing is downloaded.
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="inverse.py", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", required=True, help="layout file (.yaml/.yml/.json): the list of conditions")
    p.add_argument("--checkpoint", help="latent diffusion bundle .safetensors (default: the bundled model)")
    p.add_argument("--size", default="1024", help="N (square) or WIDTHxHEIGHT of the result (default 1024)")
    p.add_argument("--also-size", dest="also_sizes", help="e.g. 256,640x480: also write the result at these sizes")
    p.add_argument("--out", default="out/inverse.png", help="result file (.png .jpg .webp .tif); default out/inverse.png")
    p.add_argument("--solver", default="guided", help="guided (guidance during sampling) or optimize (Adam on z)")
    p.add_argument("--steps", type=int, default=50,
                   help="sampler steps: the guided run, or the sample optimize starts from (default 50)")
    add_deprecated_alias(p, "--sample-steps", "--steps", dest="steps", type=int)
    p.add_argument("--optimize-steps", type=int, default=200, help="optimize: Adam steps (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--clip", help="directory of a transformers CLIPModel + tokenizer (for clip_text terms)")
    add_sampler_arguments(p, sampler="ddim")  # the guided solvers were tuned on DDIM 50
    p.add_argument("--condition-scale", type=float, default=None,
                   help="guided: step size s of the conditions' gradient on each step's clean estimate, for every "
                        "term (default per term kind, measured by tools/sweep_inverse.py: pixels 10000, "
                        "masked_pixels 3000, clip_text 1000 (not measured); not the cfg scale)")
    add_deprecated_alias(p, "--guidance-scale", "--condition-scale", dest="condition_scale", type=float)
    p.add_argument("--lr", type=float, default=0.05, help="optimize: Adam learning rate on the latent (default 0.05)")
    p.add_argument("--prior", default="gaussian", help="optimize: gaussian, denoise or none (default gaussian)")
    p.add_argument("--prior-weight", type=float, default=1e-3, help="optimize: weight of the prior (default 1e-3)")
    p.add_argument("--optimize-field", action="store_true", help="optimize: also fit a residual field")
    p.add_argument("--field-lr", type=float, default=0.05, help="optimize: Adam learning rate on the field (0.05)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    fail = parser.fail

    from infd.inverse.job import InverseError, make_inverse_request

    try:  # the layout, sizes and paths, before any model is loaded
        request = make_inverse_request(
            layout=args.layout, size=args.size, out=args.out, also_sizes=args.also_sizes, solver=args.solver,
            steps=args.steps, optimize_steps=args.optimize_steps, seed=args.seed, sampler=args.sampler,
            cfg_scale=args.cfg_scale, class_label=args.class_label, condition_scale=args.condition_scale,
            lr=args.lr, prior=args.prior, prior_weight=args.prior_weight, optimize_field=args.optimize_field,
            field_lr=args.field_lr, device=args.device)
    except InverseError as err:
        return fail(err)

    interrupt_on_sigterm()
    from tqdm import tqdm

    from infd.checkpoint import CheckpointError
    from infd.config import ConfigError
    from infd.inverse.clip import ClipError, load_clip
    from infd.inverse.conditions import build_condition_terms
    from infd.inverse.job import describe_losses, solve, write_outputs
    from infd.inverse.layout import LayoutError
    from infd.rendering.formats import SinkError
    from infd.rendering.job import resolve_device
    from infd.rendering.request import RequestError
    from infd.rendering.sampling import BUNDLED_CHECKPOINT, check_sampling, has_prior, load_render_model

    try:
        if request.layout.needs_clip and args.clip is None:
            raise ClipError("the layout has clip_text terms: pass --clip DIR, a transformers CLIPModel directory "
                            "(save_pretrained of e.g. openai/clip-vit-base-patch32 with its tokenizer)")
        device = resolve_device(request.device)
        clip = load_clip(args.clip, device) if request.layout.needs_clip else None
        model = load_render_model(args.checkpoint).to(device)
        if not has_prior(model):
            raise CheckpointError(f"{args.checkpoint or BUNDLED_CHECKPOINT} holds a {type(model).__name__} without "
                                  "a diffusion prior: inverse problems need a latent diffusion bundle")
        check_sampling(model, request.sampling)  # --class on an unconditional model, --steps past its schedule
        conditions = build_condition_terms(request.layout, clip, seed=request.seed)
        result = solve(request, model, conditions, progress=True)
        for line in describe_losses(conditions, result.losses):
            print(line)
        with tqdm(desc="tiles", unit="tile", file=sys.stderr, dynamic_ncols=True) as bar:
            written = write_outputs(request, model, result.phi.to(device), bar)
        for path in written:
            print(f"wrote {path}")
        return 0
    except (InverseError, LayoutError, ClipError, CheckpointError, ConfigError, RequestError, SinkError) as err:
        return fail(err)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; no partial file was left at the output path", file=sys.stderr)
        return 130


if __name__ == "__main__":
    run_tool(main)
