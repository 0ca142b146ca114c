#!/usr/bin/env python3
"""Overlay a logged loss of several training runs against training time (or step), as one plot and a table.

Examples:
  python tools/compare_runs.py runs/cmp/unet runs/cmp/uvit --out docs/images/backbones_loss.png
  python tools/compare_runs.py runs/a runs/b --x step --key l1

Time is the training time from each log line's steps and steps_per_s (pauses between a stop and a resume
do not count), so runs on the same machine compare at equal compute. The table gives each run's steps,
minutes and the mean of the key over its last --tail log lines, and, at the shortest run's length, each
run's mean over the same window.
"""
from __future__ import annotations

import math
from pathlib import Path

from infd.cli import OneLineParser, UsageError, refuse_overwrite, run_tool


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (each with log.jsonl)")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--key", default="loss", help="logged value to plot (default loss)")
    parser.add_argument("--x", choices=["minutes", "step"], default="minutes", help="x axis (default minutes)")
    parser.add_argument("--tail", type=int, default=40, help="log lines averaged for the table (default 40)")
    parser.add_argument("--points", type=int, default=60, help="points per curve (default 60)")
    args = parser.parse_args(argv)
    from infd.eval.report import line_plot
    from infd.training.run_dir import binned, read_log, training_minutes

    try:
        if args.tail < 1 or args.points < 1:
            raise UsageError("--tail and --points must be at least 1")
        refuse_overwrite([args.out], [str(Path(r) / "log.jsonl") for r in args.runs], what="--out")
        logs = {}
        for run in args.runs:
            rows = [r for r in read_log(run) if isinstance(r.get(args.key), (int, float))]
            if not rows:
                raise UsageError(f"{run} has no log.jsonl lines with {args.key!r}")
            logs[Path(run).name if Path(run).name not in logs else str(run)] = rows
        series, table = {}, []
        shortest = min(training_minutes(rows)[-1] for rows in logs.values())
        for name, rows in logs.items():
            minutes = training_minutes(rows)
            xs = minutes if args.x == "minutes" else [r["step"] for r in rows]
            points = list(zip(xs, (r[args.key] for r in rows)))
            series[name] = binned(points, max(1, math.ceil(len(points) / args.points)))
            last = [r[args.key] for r in rows[-args.tail:]]
            cut = [r[args.key] for r, m in zip(rows, minutes) if m <= shortest][-args.tail:]
            table.append((name, rows[-1]["step"], minutes[-1], sum(last) / len(last), sum(cut) / len(cut)))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        line_plot(args.out, series, f"{args.key} (means of binned log lines)",
                  "training minutes" if args.x == "minutes" else "step", args.key)
    except (OSError, ValueError) as err:
        return parser.fail(err)
    print(f"| run | steps | minutes | {args.key}, last {args.tail} lines | {args.key} at {shortest:.1f} min |")
    print("|---|---|---|---|---|")
    for name, steps, minutes, last, cut in table:
        print(f"| {name} | {steps} | {minutes:.1f} | {last:.4f} | {cut:.4f} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_tool(main)
