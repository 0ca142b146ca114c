#!/usr/bin/env python3
"""Check that infd is ready on this GPU machine, in one run of a few minutes; prints one table.

On a CUDA machine: the tests marked gpu, 20 bf16 steps of each training stage on tiny data (steps/s), a
16384 x 16384 render of the bundled model into a TIFF (peak GPU memory), the CLIF convolutions' throughput
against the card's dense bf16 peak, and a 2-process NCCL all-reduce when two GPUs exist. Without CUDA it
says so in one line and exits 0. Checks: ``infd.gpu_check``.

  python3 tools/check_gpu.py
  python3 tools/check_gpu.py --only render clif
"""
from __future__ import annotations

import argparse
import sys
import time

from infd.cli import OneLineParser, run_tool


def main(argv: list[str] | None = None) -> int:
    from infd.gpu_check import CHECKS, format_table, run_check

    p = OneLineParser(prog="check_gpu.py", description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(CHECKS), help="run only these checks")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("check_gpu.py: no CUDA device here (torch.cuda.is_available() is False); nothing to check")
        return 0
    names = args.only or list(CHECKS)
    print(f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}", flush=True)
    rows, start = [], time.perf_counter()
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += run_check(name, CHECKS[name])
    print(format_table(rows))
    print(f"{time.perf_counter() - start:.0f} s in all")
    return 1 if any(result == "FAILED" for _, result, _ in rows) else 0


if __name__ == "__main__":
    run_tool(main)
