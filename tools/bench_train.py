#!/usr/bin/env python3
"""Benchmark stage 1: the time split of one training step and samples per second, for any configs.

Each config's step is split into data, encoder, decoder, renderer, loss (L1 + LPIPS), discriminator,
backward and optimizer (infd/training/ae_bench.py). With several configs the steps interleave
(A, B, A, B, ...) in one process and the last line is ``samples_per_s_ratio=<r>``: the last config's
samples per second over the first's (the baseline), both measured in this run.

Examples:
  python3 tools/bench_train.py --config configs/train/ae_cpu.yaml
  python3 tools/bench_train.py --config configs/train/ae_cpu.yaml configs/train/ae_cpu_v3.yaml --steps 20
  python3 tools/bench_train.py --config configs/train/ae_cpu_v3.yaml --set data.batch_size=8 --gan
"""
from __future__ import annotations

import argparse
import sys

from infd.cli import OneLineParser, run_tool


def parse_args(argv=None):
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", required=True, help="stage-1 train configs; the first is the baseline")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="overrides applied to every config (repeatable)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per config (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--gan", action="store_true", help="time the GAN terms too (as after gan_start_step)")
    parser.add_argument("--step", type=int, default=None, help="the training step whose loss terms to time "
                        "(default: each config's loss.perceptual_start_step, i.e. with LPIPS)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from infd.config import ConfigError, load_config, parse_overrides
    from infd.devices import resolve_device
    from infd.training.ae_bench import compare
    from infd.training.ae_loop import AETrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        overrides = parse_overrides(args.set)
        configs = {path: load_config(AETrainConfig, path, overrides) for path in args.config}
    except (ConfigError, ValueError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    torch.manual_seed(0)

    def progress(done, total):
        print(f"\rstep {done}/{total}", end="", file=sys.stderr, flush=True)

    splits = compare(configs, device, args.steps, args.warmup, gan=True if args.gan else None, step=args.step,
                     progress=progress)
    print(file=sys.stderr)
    for path, split in splits.items():
        c = configs[path]
        print(f"# {path}: batch {c.data.batch_size}, patch {c.data.patches.patch_size}, "
              f"mixed_precision {c.mixed_precision}, channels_last {c.channels_last}, threads {torch.get_num_threads()}")
        print(split.table())
    base, new = splits[args.config[0]], splits[args.config[-1]]
    print(f"samples_per_s_ratio={new.samples_per_s / base.samples_per_s:.3f}")
    return 0


if __name__ == "__main__":
    run_tool(main)
