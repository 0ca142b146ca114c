#!/usr/bin/env python3
"""Train infd models.

Examples:
  python tools/train.py ae --config configs/train/ae_cpu.yaml
  python tools/train.py ae --config configs/train/ae_cpu.yaml --set max_steps=200 --run-dir runs/try
  python tools/train.py ae --config configs/train/ae_ffhq.yaml --dry-run      # print the resolved config
  accelerate launch --multi_gpu --num_processes 8 tools/train.py ae --config configs/train/ae_ffhq.yaml
  python tools/train.py dm --config configs/train/dm_cpu_unet.yaml     # stage 2 on the latent cache
                                                    # (tools/cache_latents.py); exports run_dir/bundle.safetensors

A run directory holds config.yaml (resolved), log.jsonl, tb/ (TensorBoard), images/ and checkpoints/.
Running the same command again resumes from the latest checkpoint (use --no-resume to start over).
"""
from __future__ import annotations

import argparse
import logging
import sys

from infd.cli import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["ae", "dm"],
                        help="what to train: ae (stage 1 autoencoder) or dm (stage 2 latent diffusion)")
    parser.add_argument("--config", help="experiment YAML (see configs/train/); required except with --help-config")
    parser.add_argument("--help-config", action="store_true",
                        help="print every config key of the stage (type, default, meaning) and exit; docs/config.md")
    parser.add_argument("--run-dir", help="override the config's run_dir")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config keys, e.g. max_steps=100 (repeatable)")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints in the run directory")
    parser.add_argument("--init-from", metavar="WEIGHTS", help="when the run directory has no saved state: start "
                        "from these .safetensors weights (same architecture; optimisers fresh, step from the file)")
    parser.add_argument("--allow-config-change", action="store_true", help="resume a run whose saved config "
                        "differs from this one (beyond run length and reporting) and apply the new one: the "
                        "restored optimisers take its lr, betas and weight decay")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def _fail(err: BaseException, code: int) -> int:
    """Print ``err`` as one line (the training log above has the details) and return ``code``. An error
    re-raised from a DataLoader worker ("Caught X in DataLoader worker ...", then the worker's traceback)
    is reported by the worker's own last line."""
    lines = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    line = lines[0]
    if line.startswith("Caught ") and "DataLoader worker" in line:
        line = lines[-1].split(": ", 1)[-1]
    print(f"error: {line}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.help_config:
        from infd.config_docs import stage_references

        print(stage_references()[args.stage], end="")
        return 0
    if args.config is None:
        print("error: --config is required (an experiment YAML, see configs/train/)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from infd.data.latents import LatentCacheError
    from infd.checkpoint import CheckpointError
    from infd.config import ConfigError, load_config, parse_overrides, to_dict

    if args.stage == "ae":
        from infd.training.ae_loop import AETrainConfig as config_cls, train_autoencoder as train
    else:
        from infd.training.dm_loop import DMTrainConfig as config_cls, train_diffusion as train

    try:
        overrides = parse_overrides(args.set)
        if args.run_dir:
            overrides["run_dir"] = args.run_dir
        config = load_config(config_cls, args.config, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        import yaml

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    import errno

    from infd.data.pipeline import DataError
    from infd.training.guard import NonFiniteLossError

    try:
        result = train(config, resume=not args.no_resume, progress=not args.no_progress, init_from=args.init_from,
                       allow_config_change=args.allow_config_change)
    except (ConfigError, CheckpointError, LatentCacheError) as err:  # set-up problems: missing cache, wrong checkpoint
        return _fail(err, 2)
    except (NonFiniteLossError, DataError) as err:  # the run failed: diverged, or its data stopped decoding
        return _fail(err, 1)
    except OSError as err:  # an unwritable run directory is the user's input; a full disk is a fault
        return _fail(err, 2 if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.ENOTDIR) else 1)
    except KeyboardInterrupt:  # a second stop signal during the final checkpoint
        print("error: interrupted", file=sys.stderr)
        return 130
    print(f"stopped at step {result.step}; run directory: {result.run_dir}")
    return 0


if __name__ == "__main__":
    run_tool(main)
