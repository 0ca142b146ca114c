"""Benchmark CLIF rendering on CPU against the original formulation, in one run.

Example (the README's figures; minutes on 2 cores):
    python3 tools/bench_render.py --size 1024 --repeats 3
Quick check:
    python3 tools/bench_render.py --size 256 --field 64 --repeats 1 --hidden 64 --bf16-size 64
"""
from __future__ import annotations

import argparse

import torch

from infd.cli import run_tool
from infd.renderers.benchmark import benchmark_render


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="output image side in pixels (default 1024)")
    parser.add_argument("--field", type=int, default=256, help="field side (default 256)")
    parser.add_argument("--channels", type=int, default=128, help="field channels (default 128)")
    parser.add_argument("--hidden", type=int, default=256, help="CLIF width (default 256, the paper's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved reference/ours pairs (default 3)")
    parser.add_argument("--bf16-size", type=int, default=128,
                        help="side of the bf16 autocast render (slow on CPUs without bf16 units; 0 skips it)")
    parser.add_argument("--plain", action="store_true", help="also time our plain (training) path")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads, set once at start-up (default: torch's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Python threads of the inference path's banded stages (default: torch's threads)")
    args = parser.parse_args(argv)
    for name in ("size", "field", "channels", "hidden", "repeats", "threads", "workers"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    if args.bf16_size < 0:
        parser.error("--bf16-size must be >= 0")
    if args.hidden % 32:
        parser.error("--hidden must be a multiple of 32 (the reference uses GroupNorm(32))")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CLIF {args.channels}x{args.field}^2 field -> {args.size}^2, hidden {args.hidden}, "
          f"{torch.get_num_threads()} threads, {args.workers or torch.get_num_threads()} workers, "
          f"torch {torch.__version__}", flush=True)
    results = benchmark_render(size=args.size, field_size=args.field, field_channels=args.channels,
                               hidden=args.hidden, repeats=args.repeats, bf16_size=args.bf16_size,
                               plain=args.plain, workers=args.workers, log=lambda line: print(line, flush=True))
    for result in results.values():
        for name in result.seconds:
            print(f"{name}: {result.megapixels_per_second(name):.4f} MP/s")
    result = results["fp32"]
    if args.plain:
        print(f"speedup_plain_vs_reference={result.speedup(new='ours_plain_fp32'):.3f}")
    print(f"speedup_vs_reference={result.speedup():.3f}")
    return 0


if __name__ == "__main__":
    run_tool(main)
