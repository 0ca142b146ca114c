#!/usr/bin/env python3
"""Benchmark stage 2: a training step on cached latents vs. encoding every batch, and sampler throughput.

The backbone comes from a stage-2 train config (its ``diffusion``) or a configs/dm/*.yaml file; the
encoder is the paper's VQ-f4 autoencoder (random weights: only its cost matters) at its 256x256 input,
so latents are 3 x 64 x 64. The last line is ``cache_speedup=<ratio>`` (median of interleaved pairs).

Examples:
  python3 tools/bench_dm.py                       # dm_cpu_unet's backbone, a few minutes on CPU
  python3 tools/bench_dm.py --config configs/train/dm_cpu_uvit.yaml --repeats 5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infd.cli import OneLineParser, run_tool


# The step counts each sampler is usually run with: DDPM's full chain, the paper's DDIM, and
# DPM-Solver++(2M), which is within 0.5% of the exact std from 25 steps (README, Diffusion).
NOMINAL_STEPS = {"ddpm": 1000, "ddim": 200, "dpmpp_2m": 25}


def load_diffusion(path: str):
    """The ``DiffusionConfig`` of a stage-2 train config or of a configs/dm/*.yaml file."""
    import yaml

    from infd.config import ConfigError, from_dict, load_config
    from infd.diffusion.config import DiffusionConfig
    from infd.training.dm_loop import DMTrainConfig

    if not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    data = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(data, dict) and "diffusion" in data:
        return load_config(DMTrainConfig, path).diffusion
    return from_dict(DiffusionConfig, data)


def main(argv=None) -> int:
    p = OneLineParser(prog="bench_dm.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/train/dm_cpu_unet.yaml", help="train config or configs/dm/*.yaml")
    p.add_argument("--autoencoder-config", default="configs/ae/vq_f4_paper.yaml", help="the encoder (random weights)")
    p.add_argument("--batch-size", type=int, default=2, help="latents per training step (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved cached/encode pairs (default 3)")
    p.add_argument("--sample-batch", type=int, default=2, help="latents sampled together (default 2)")
    p.add_argument("--sample-steps", type=int, default=5, help="sampler steps timed (default 5; scaled to the usual counts)")
    p.add_argument("--samplers", default="ddpm,ddim,dpmpp_2m", help="comma-separated (default all)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    for name in ("batch_size", "repeats", "sample_batch", "sample_steps"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    samplers = [s for s in args.samplers.split(",") if s]
    if any(s not in NOMINAL_STEPS for s in samplers):
        p.error(f"--samplers: choose from {', '.join(NOMINAL_STEPS)}")

    import torch

    from infd.config import ConfigError, load_config
    from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
    from infd.training.dm_bench import benchmark_samplers, benchmark_training_step

    try:
        diffusion = load_diffusion(args.config)
        ae_config = load_config(AutoencoderConfig, args.autoencoder_config)
    except ConfigError as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = NeuralFieldAutoencoder(ae_config).eval()
    S, h = ae_config.input_size, ae_config.latent_size
    count = lambda m: sum(q.numel() for q in m.parameters()) / 1e6  # noqa: E731
    print(f"backbone {diffusion.backbone} from {args.config}; latents {ae_config.z_channels}x{h}x{h} from a "
          f"{count(encoder.encoder):.1f} M-parameter encoder at {S}x{S}; batch {args.batch_size}; "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    steps = benchmark_training_step(diffusion, encoder, args.batch_size, args.repeats, log=log)
    del encoder
    samples = benchmark_samplers(diffusion, (ae_config.z_channels, h, h), args.sample_batch, args.sample_steps,
                                 samplers, log=log)
    for s in samples:
        nominal = NOMINAL_STEPS[s.name]
        print(f"sampler {s.name}: {s.seconds_per_step * 1000:.1f} ms/step for {s.batch} latents; "
              f"{s.latents_per_second(nominal):.4f} latents/s at {nominal} steps "
              f"({s.seconds_per_step * nominal / s.batch:.2f} s per latent)")
    for name in ("cached", "encode"):
        print(f"train_step_{name}: {steps.median(name):.3f} s ({args.batch_size / steps.median(name):.2f} latents/s)")
    print(f"cache_speedup={steps.speedup():.2f}")
    return 0


if __name__ == "__main__":
    run_tool(main)
