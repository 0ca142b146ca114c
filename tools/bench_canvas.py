#!/usr/bin/env python3
"""Measure joint canvas sampling (issue 18): cost per latent position and peak memory as the canvas grows,
and the seams across window borders of a grow render.

Cost: for each window mode and canvas area (1x, 4x, 16x the trained latent by default), one fresh
process samples one seed (untimed warm-up on the trained size first, then the timed canvas) and reports
seconds and its peak memory (CUDA: max allocated; CPU: the process's peak RSS); printed per latent
position, as a ratio to the trained size's in the same run. Seams: ``infd.eval.canvas`` (1.0 = none).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from infd.cli import OneLineParser, add_sampler_arguments, parse_device, run_tool

EXAMPLES = """\
examples:
  tools/bench_canvas.py                                  the bundled model: 1x, 4x, 16x, both modes, seams
  tools/bench_canvas.py --areas 1 4 --modes shifted --steps 5 --seam-samples 0
"""
MODES = ("shifted", "overlap")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="bench_canvas.py", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="infd diffusion bundle (default: the bundled model)")
    p.add_argument("--areas", type=int, nargs="+", default=[1, 4, 16],
                   help="canvas areas in trained latents, square numbers (default 1 4 16)")
    p.add_argument("--modes", nargs="+", default=list(MODES), help="window modes (default shifted overlap)")
    p.add_argument("--window-stride", type=int, help="overlap windows' stride (default three quarters of a window)")
    p.add_argument("--window-batch", type=int, default=8, help="windows per backbone call (default 8)")
    p.add_argument("--steps", type=int, default=10, help="sampler steps (default 10)")
    add_sampler_arguments(p, sampler="ddim")  # the protocol of the figures in the README
    p.add_argument("--seam-samples", type=int, default=4, help="samples of the seam figures (0 skips; default 4)")
    p.add_argument("--seam-canvas", default="1x4", help="seam canvas in trained latents, HxW (default 1x4: a panorama)")
    p.add_argument("--seam-magnification", type=int, default=2, help="render size / field size (default 2)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--threads", type=int, help="torch threads in every process (default: torch's)")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: MODE:AREA, one measurement as a JSON line
    return p


def check_args(args) -> None:
    for name in ("steps", "window_batch", "seam_magnification", "threads", "window_stride"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    bad = [a for a in args.areas if a < 1 or math.isqrt(a) ** 2 != a]
    if bad:
        raise ValueError(f"--areas must be square numbers >= 1 (1, 4, 16, ...), got {bad[0]}")
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        raise ValueError(f"--modes must be among {', '.join(MODES)}, got {unknown[0]}")
    if args.seam_samples < 0:
        raise ValueError(f"--seam-samples must be >= 0, got {args.seam_samples}")
    parts = args.seam_canvas.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(f"--seam-canvas must be HxW in trained latents (e.g. 1x4), got '{args.seam_canvas}'")
    parse_device(args.device)


def fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def load(args):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from infd.devices import resolve_device
    from infd.diffusion.sampling import SamplingSpec
    from infd.rendering.sampling import has_prior, load_render_model

    device = resolve_device(args.device)
    model = load_render_model(args.checkpoint).to(device).eval()
    if not has_prior(model):
        raise ValueError("joint sampling needs a diffusion bundle (this checkpoint has no prior)")
    return model, SamplingSpec(args.sampler, args.steps, args.cfg_scale, args.class_label), device


def measure_one(args) -> dict:
    """``--one MODE:AREA`` in this (fresh) process: warm up at the trained size, then time the canvas."""
    import resource

    import torch

    from infd.diffusion.windows import WindowSpec
    from infd.eval.canvas import time_canvas

    mode, area = args.one.split(":")
    model, spec, device = load(args)
    S, k = model.config.latent_size, math.isqrt(int(area))
    windows = WindowSpec(stride=args.window_stride, batch=args.window_batch, mode=mode)
    time_canvas(model, (S, S), spec, windows)  # one-time costs stay untimed
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_canvas(model, (S * k, S * k), spec, windows)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"mode": mode, "area": int(area), "canvas": [S * k, S * k], "seconds": seconds, "peak_bytes": peak,
            "windows": model.joint_windows_total((S * k, S * k), spec, model.resolve_windows(windows))}


def run_one(args, mode: str, area: int) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--one", f"{mode}:{area}", "--steps", str(args.steps),
            "--sampler", args.sampler, "--cfg-scale", str(args.cfg_scale), "--window-batch", str(args.window_batch),
            "--device", args.device]
    for flag, value in (("--checkpoint", args.checkpoint), ("--class", args.class_label),
                        ("--window-stride", args.window_stride), ("--threads", args.threads)):
        if value is not None:
            argv += [flag, str(value)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise ValueError(f"the {mode} {area}x measurement failed: "
                         f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except ValueError as err:
        return parser.fail(err)
    if args.one:
        print(json.dumps(measure_one(args)))
        return 0
    try:
        model, spec, device = load(args)
        rows = {mode: [run_one(args, mode, area) for area in sorted(set(args.areas) | {1})] for mode in args.modes}
    except ValueError as err:
        return parser.fail(err)
    S = model.config.latent_size
    print(f"{args.checkpoint or 'bundled model'}: trained latent {S}x{S}, {spec.sampler} {spec.steps} steps, "
          f"window batch {args.window_batch}, device {device}; one fresh process per row")
    print(f"{'mode':>8}  {'area':>5}  {'canvas':>9}  {'windows':>7}  {'seconds':>8}  {'us/pos':>8}  "
          f"{'cost_ratio':>10}  {'peak_MiB':>8}")
    for mode, measured in rows.items():
        base = measured[0]["seconds"] / (S * S)
        for row in measured:
            per = row["seconds"] / (row["canvas"][0] * row["canvas"][1])
            print(f"{mode:>8}  {row['area']:>4}x  {row['canvas'][0]:>4}x{row['canvas'][1]:<4}  {row['windows']:>7}  "
                  f"{row['seconds']:8.3f}  {per * 1e6:8.1f}  {per / base:10.2f}  {row['peak_bytes'] / 2**20:8.0f}",
                  flush=True)
    if args.seam_samples:
        from infd.diffusion.windows import WindowSpec
        from infd.eval.canvas import canvas_seams

        h, w = (int(p) * S for p in args.seam_canvas.lower().split("x"))
        seeds = list(range(args.seam_samples))
        for mode in args.modes:
            windows = WindowSpec(stride=args.window_stride, batch=args.window_batch, mode=mode)
            f = model.config.autoencoder.factor * args.seam_magnification
            seams = canvas_seams(model, seeds, (h, w), (h * f, w * f), spec, windows)
            print(f"seams {mode}: canvas {h}x{w} latents rendered {w * f}x{h * f}, {len(seeds)} samples: "
                  f"sampler borders ratio_h {fmt(seams.sampler.horizontal)} ratio_v {fmt(seams.sampler.vertical)}; "
                  f"decoder borders ratio_h {fmt(seams.decoder.horizontal)} ratio_v {fmt(seams.decoder.vertical)} "
                  "(1.0 = no seam; n/a: no border on that axis)", flush=True)
    return 0


if __name__ == "__main__":
    run_tool(main)
