#!/usr/bin/env python3
"""Benchmark: streaming a render into a tiled TIFF at growing sizes (megapixels/s and peak memory).

Each size runs in a fresh subprocess so peak memory is its own: peak RSS on CPU (the kernel's VmHWM,
reset after warm-up), ``torch.cuda.max_memory_allocated`` on GPU. A streaming sink should keep the
time per megapixel and the peak memory flat as the image grows.

examples:
  tools/bench_render_sink.py                                  1024^2 .. 8192^2, CLIF hidden 32, CPU
  tools/bench_render_sink.py --sizes 2048,8192 --hidden 64 --tile 1024 --device cuda
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infd.cli import run_tool



def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_one(size: int, hidden: int, tile: int | None, device: str, out_dir: Path, repeats: int = 1) -> dict:
    """Render a ``size`` x ``size`` image of a random CLIF field into a TIFF ``repeats`` times.

    Returns the total time and megapixels over the repeats and the peak memory of all of them.
    """
    import resource

    import torch

    from infd.rendering.engine import prepare_renderer, render
    from infd.rendering.sinks import FileSink
    from infd.renderers import CLIF, CLIFConfig

    torch.manual_seed(0)
    renderer = prepare_renderer(CLIF(CLIFConfig(field_channels=32, hidden=hidden, num_blocks=2)), device)
    phi = torch.randn(1, 32, 256, 256, device=device)  # a field of the paper's size (256^2), 32 channels
    render(renderer, phi, (256, 256), tile=tile)  # warm-up: kernels, allocator, thread pools
    path = out_dir / f"bench_{size}.tif"
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline_kib = _status_kib("VmRSS")
    reset = _reset_peak_rss()
    start = time.perf_counter()
    for _ in range(repeats):
        render(renderer, phi, (size, size), tile=tile, sink=FileSink(path))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak_kib = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"size": size, "repeats": repeats, "seconds": seconds, "megapixels": repeats * size * size / 1e6,
              "file_mb": path.stat().st_size / 1e6, "peak_rss_mb": peak_kib / 1024,
              "rss_before_mb": (baseline_kib or 0) / 1024, "peak_rss_is_render_only": reset}
    if device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    path.unlink()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("examples:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1024,2048,4096,8192", help="image sides to measure")
    p.add_argument("--hidden", type=int, default=32, help="CLIF width (default 32, small for CPU)")
    p.add_argument("--tile", type=int, default=512, help="tile side (default 512; 0: from free memory)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--baseline", type=int, default=2048, help="size the ratios are taken against")
    p.add_argument("--min-megapixels", type=float, default=16,
                   help="repeat small sizes until at least this many megapixels are timed (less noise)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    tile = args.tile or None
    if args.one:
        print(json.dumps(measure_one(args.one, args.hidden, tile, args.device, Path(args.out_dir), args.repeats)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_render_sink_") as tmp:
        for size in sizes:
            repeats = max(1, math.ceil(args.min_megapixels / (size * size / 1e6)))
            cmd = [sys.executable, __file__, "--one", str(size), "--repeats", str(repeats), "--hidden",
                   str(args.hidden), "--tile", str(args.tile), "--device", args.device, "--out-dir", tmp]
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            gpu = f"  peak GPU {r['peak_gpu_mb']:8.1f} MB" if "peak_gpu_mb" in r else ""
            print(f"{size:>6}^2 x{repeats:<3} {r['seconds']:8.2f} s  {r['megapixels'] / r['seconds']:6.3f} MP/s  "
                  f"{r['seconds'] / r['megapixels']:7.3f} s/MP  peak RSS {r['peak_rss_mb']:8.1f} MB "
                  f"(before render {r['rss_before_mb']:.1f} MB){gpu}", flush=True)
    by_size = {r["size"]: r for r in results}
    base = by_size.get(args.baseline)
    print(f"device {args.device}, CLIF hidden {args.hidden}, 2 res blocks, field 32x256x256, "
          f"tile {args.tile or 'auto'}, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    if base:
        memory_key = "peak_gpu_mb" if "peak_gpu_mb" in base else "peak_rss_mb"
        for r in results:
            if r["size"] != args.baseline:
                time_ratio = (r["seconds"] / r["megapixels"]) / (base["seconds"] / base["megapixels"])
                print(f"{r['size']}^2 vs {args.baseline}^2: time per MP x{time_ratio:.3f}, "
                      f"peak memory x{r[memory_key] / base[memory_key]:.3f} ({memory_key})")
    return 0


if __name__ == "__main__":
    run_tool(main)
