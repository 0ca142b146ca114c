#!/usr/bin/env python3
"""Measure continuity at every magnification and the image frame of a model's renders (issue 13).

Prints one table: per magnification m (virtual image = m x the field), the centred window rendered,
the cell-border ratio (mean |neighbour difference| across field-cell borders / inside cells; 1.0 = no
visible cell structure; n/a at 1x, where every pair crosses a border), the cell-phase contrast (the
largest / smallest mean |neighbour difference| over 8 positions in the cell: 1.0 when nothing repeats at
the cell period, which the ratio alone misses), the window's render time, MP/s
and its cost relative to a full 1024x1024 render timed right after it (interleaved pairs); then the
frame figures (d01: outermost ring vs the next, d12: the next two rings; no frame when d01 <= d12).
Definitions: ``infd.eval.zoom``, which does the work.
"""
from __future__ import annotations

import argparse

from infd.cli import OneLineParser, add_sampler_arguments, parse_device, run_tool

FULL_PX = 1024  # the reference render: a full 1024 x 1024 image
EXAMPLES = """\
examples:
  tools/bench_zoom.py                                   the bundled model, 1x to 512x, 16 frame samples
  tools/bench_zoom.py --checkpoint runs/ae/checkpoints/model-latest.safetensors --magnifications 2 8 32 \\
      --frame-samples 0                                 an autoencoder (N(0, I) latents), no frame figures
  tools/bench_zoom.py --threads 2 --num-samples 4 --frame-sizes 256 1024 --device cpu
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="bench_zoom.py", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="infd .safetensors checkpoint (default: the bundled model)")
    p.add_argument("--magnifications", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                   help="output side / field side (default 1 2 4 ... 512)")
    p.add_argument("--window", type=int, default=1024, help="window side in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--num-samples", type=int, default=1, help="samples in the zoom windows (default 1)")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (bundles; default 20, the quick protocol)")
    add_sampler_arguments(p, sampler="ddim")  # the protocol of the figures in the README
    p.add_argument("--frame-samples", type=int, default=16, help="samples for the frame figures (0 skips; default 16)")
    p.add_argument("--frame-sizes", type=int, nargs="+", default=[256, 1024],
                   help="frame render sizes (default 256 1024)")
    p.add_argument("--ring", type=int, default=8, help="ring width in pixels (default 8)")
    p.add_argument("--batch", type=int, default=4, help="frame samples rendered together (default 4)")
    p.add_argument("--repeats", type=int, default=1,
                   help="timings per window (seconds: the fastest; cost: the median ratio; default 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--threads", type=int, help="torch threads, set once at start-up (default: torch's)")
    return p


def check_args(args) -> None:
    """Everything checkable before torch is imported (``ValueError`` with one line)."""
    for name in ("window", "num_samples", "steps", "ring", "batch", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if min(args.magnifications) < 1:
        raise ValueError(f"--magnifications must be at least 1, got {args.magnifications}")
    if args.frame_samples < 0:
        raise ValueError(f"--frame-samples must be >= 0, got {args.frame_samples}")
    small = [s for s in args.frame_sizes if s <= 6 * args.ring]
    if args.frame_samples and small:
        raise ValueError(f"--frame-sizes {small[0]} holds no 3 rings of {args.ring} px "
                         f"(need more than {6 * args.ring})")
    parse_device(args.device)


def fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"  # nan: no pair to compare with


def print_zoom(rows) -> None:
    header = ("magnification", "virtual", "window", "ratio_h", "ratio_v", "ratio", "phase", "seconds", "MP/s",
              "cost_vs_full_1024")
    print("  ".join(f"{h:>13}" for h in header))
    for row in rows:
        cells = (f"{row.magnification}x", f"{row.size[1]}x{row.size[0]}", f"{row.window.width}x{row.window.height}",
                 fmt(row.ratio.horizontal), fmt(row.ratio.vertical), fmt(row.ratio.mean), fmt(row.phase.mean),
                 f"{row.seconds:.3f}",
                 f"{row.megapixels_per_second:.3f}", f"{row.cost_vs_reference:.3f}")
        print("  ".join(f"{c:>13}" for c in cells), flush=True)
    print(f"cost_vs_full_1024={rows[-1].cost_vs_reference:.3f} (a {rows[-1].window.width}x"
          f"{rows[-1].window.height} window at {rows[-1].magnification}x)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ValueError as err:
        return parser.fail(err)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from infd.checkpoint import CheckpointError
    from infd.devices import resolve_device
    from infd.diffusion.sampling import SamplingSpec
    from infd.eval import zoom
    from infd.rendering.engine import prepare_renderer
    from infd.rendering.sampling import has_prior, load_render_model, sample_latents

    try:
        spec = SamplingSpec(args.sampler, args.steps, args.cfg_scale, args.class_label)
        device = resolve_device(args.device)
        model = load_render_model(args.checkpoint).to(device)
        z = sample_latents(model, list(range(args.seed, args.seed + args.num_samples)), spec)
    except (ValueError, CheckpointError) as err:
        return parser.fail(err)
    latents = f"{spec.sampler} {spec.steps} steps" if has_prior(model) else "N(0, I) latents (no prior)"
    print(f"{args.checkpoint or 'bundled model'}: {latents}, seeds {args.seed}..{args.seed + args.num_samples - 1}, "
          f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    renderer = prepare_renderer(model.renderer, device)
    with torch.inference_mode():
        phi = model.decode(z)
    print(f"field {phi.shape[1]}x{phi.shape[2]}x{phi.shape[3]}; cost_vs_full_1024: median over {args.repeats} "
          f"repeat(s) of window time / the time of a full {FULL_PX}x{FULL_PX} render right after it", flush=True)
    rows = zoom.zoom_windows(model, z, args.magnifications, args.window, renderer=renderer, repeats=args.repeats,
                             reference_size=(FULL_PX, FULL_PX))
    print_zoom(rows)
    if args.frame_samples:
        seeds = list(range(args.seed, args.seed + args.frame_samples))
        figures = zoom.frame_figures(model, seeds, args.frame_sizes, spec, batch=args.batch, ring_px=args.ring,
                                     renderer=renderer)
        print(f"frame: {len(seeds)} samples (seeds {seeds[0]}..{seeds[-1]}), {args.ring} px rings, "
              "mean |side colour difference| in [-1, 1] units")
        print(f"{'size':>6}  {'d01':>8}  {'d12':>8}  no_frame (d01 <= d12)")
        for size, (d01, d12) in figures.items():
            print(f"{size:>6}  {d01:8.4f}  {d12:8.4f}  {'yes' if d01 <= d12 else 'no'}")
    return 0


if __name__ == "__main__":
    run_tool(main)
