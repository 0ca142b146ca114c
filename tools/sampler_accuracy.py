"""Print how well each sampler reproduces Gaussian data whose exact denoiser is known.

Example:
    python3 tools/sampler_accuracy.py --schedule scaled_linear --steps 10 25 50 200 --std 0.8

For x0 ~ N(mean, std^2) per scalar, the exact eps-model is ``GaussianMixtureDenoiser``; any gap between
the sample moments and (mean, std) is the sampler's discretisation error (plus Monte-Carlo noise of
about std / sqrt(num) for DDPM, whose noise is random; x_T is stratified, so deterministic samplers
have almost none).
"""
from __future__ import annotations

import argparse

import torch

from infd.diffusion.analytic import GaussianMixtureDenoiser
from infd.cli import run_tool
from infd.diffusion.samplers import SAMPLERS
from infd.diffusion.schedules import make_schedule


def stratified_normal(num: int, seed: int) -> torch.Tensor:
    u = (torch.arange(num, dtype=torch.float64) + 0.5) / num
    z = (2 ** 0.5 * torch.erfinv(2 * u - 1)).float()
    return z[torch.randperm(num, generator=torch.Generator().manual_seed(seed))].reshape(1, 1, 1, num)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--schedule", default="scaled_linear", choices=["linear", "scaled_linear", "cosine"])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 200])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--mean", type=float, default=0.5)
    parser.add_argument("--std", type=float, default=0.8)
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM eta (default 0: deterministic)")
    parser.add_argument("--variance", default="small", choices=["small", "large"], help="DDPM variance")
    parser.add_argument("--num", type=int, default=20480, help="scalars per run")
    args = parser.parse_args(argv)
    if args.std <= 0 or args.num < 2 or min(args.steps) < 1:
        parser.error("need --std > 0, --num >= 2 and --steps >= 1")
    schedule = make_schedule(kind=args.schedule)
    model = GaussianMixtureDenoiser(schedule, [args.mean], [args.std])
    print(f"{args.schedule} schedule, data N({args.mean}, {args.std}^2), {args.num} scalars")
    print(f"{'sampler':>9} {'steps':>6} {'mean err / std':>15} {'std ratio':>10}")
    for name in args.samplers:
        for steps in args.steps:
            extra = {"ddim": {"eta": args.eta}, "ddpm": {"variance": args.variance}}.get(name, {})
            x = SAMPLERS[name](model, stratified_normal(args.num, 0), schedule, steps,
                               rng=torch.Generator().manual_seed(1), **extra)
            print(f"{name:>9} {steps:>6} {(x.mean().item() - args.mean) / args.std:>+15.4f} "
                  f"{x.std().item() / args.std:>10.4f}")
    return 0


if __name__ == "__main__":
    run_tool(main)
