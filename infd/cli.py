"""Shared pieces of the command-line tools in tools/ (argument parsing only; no torch import).

``OneLineParser`` (errors as one line, exit code 2), the parsers of values several tools take
(``parse_size``, ``parse_sizes``, ``parse_device``: ``UsageError`` with one line), the sampling options
(``add_sampler_arguments``), deprecated option names (``add_deprecated_alias``), SIGTERM as Ctrl-C
(``interrupt_on_sigterm``), Ctrl-C as one line and exit 130 (``run_tool``) and the guard that no output
replaces an input (``refuse_overwrite``).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from infd.diffusion.sampling import CLASS_PER_SEED, DEFAULT_SAMPLER, SAMPLER_NAMES


MAX_SIDE = 2**31 - 1  # pixels a side of a virtual image: regions of it are indexed with int32 offsets


class UsageError(ValueError):
    """An invalid command-line value (one line, shown to the user as is)."""


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line and exit code 2 (argparse would print the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def fail(self, err: Exception) -> int:
        """Print ``err`` as one ``prog: error:`` line on stderr; the exit code to return (2)."""
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        return 2


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so a tool's ``except KeyboardInterrupt`` removes its temp files."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def run_tool(main) -> None:
    """``sys.exit(main())`` for a tool's ``__main__``; Ctrl-C (or SIGTERM, see ``interrupt_on_sigterm``)
    that ``main`` does not handle itself, e.g. during its imports, is one line and exit 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{Path(sys.argv[0]).name}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the same inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex of the resolved file names a ``%d``-style shard pattern (one integer field) expands to."""
    path = Path(pattern).resolve()
    parts = re.split(r"%0?\d*d", str(path), maxsplit=1)
    if len(parts) != 2:
        return re.compile(re.escape(str(path)))
    return re.compile(re.escape(parts[0]) + r"\d+" + re.escape(parts[1]))


def refuse_overwrite(outputs, inputs, what: str = "--out") -> None:
    """``UsageError`` (one line) when an output path, or a name an output shard pattern expands to, is one
    of the ``inputs``: no tool ever replaces a file it reads. Outputs with a ``%`` field are patterns."""
    for out in map(str, outputs):
        for given in map(Path, inputs):
            hit = (_pattern_regex(out).fullmatch(str(given.resolve())) is not None or
                   any(_same_file(Path(out % i), given) for i in range(2))) if "%" in out else _same_file(Path(out), given)
            if hit:
                raise UsageError(f"{what} {out} would overwrite the input {given}; choose another output path")


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """``"2048"`` -> ``(2048, 2048)``; ``"3840x2160"`` (width x height) -> ``(2160, 3840)``."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match:
        raise UsageError(f"{what} must be N or WIDTHxHEIGHT with positive integers, got '{text}'")
    width = int(match.group(1))
    height = int(match.group(2)) if match.group(2) else width
    if width < 1 or height < 1:
        raise UsageError(f"{what} must be at least 1 pixel a side, got '{text}'")
    if max(width, height) > MAX_SIDE:
        raise UsageError(f"{what} must be at most {MAX_SIDE} pixels a side, got '{text}'")
    return height, width


def parse_sizes(text: str, what: str) -> list[tuple[int, int]]:
    """``"256,1024,640x480"`` (the value of option ``what``) -> sizes ``(H, W)``."""
    return [parse_size(part, what) for part in text.split(",")]


def parse_device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked (not resolved: that needs torch)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got '{text}'")
    return text


def parse_class(text: str) -> int | str | None:
    """``--class``: a label (an integer, checked later against the model), ``seed`` or ``none``."""
    if text in (CLASS_PER_SEED, "none"):
        return None if text == "none" else text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a label >= 0, '{CLASS_PER_SEED}' or 'none', got '{text}'") from None


def add_sampler_arguments(parser: argparse.ArgumentParser, sampler: str = DEFAULT_SAMPLER,
                          class_label: int | str | None = None, cfg_scale: float = 1.0) -> None:
    """``--sampler``, ``--cfg-scale`` and ``--class`` (defaults: the arguments): the fields of a
    ``SamplingSpec`` besides its steps."""
    parser.add_argument("--sampler", default=sampler, help=f"{', '.join(SAMPLER_NAMES)} (default {sampler})")
    parser.add_argument("--cfg-scale", type=float, default=cfg_scale,
                        help="classifier-free guidance scale w, out_u + w (out_c - out_u): 1 is the conditional "
                             f"model, 0 the unconditional one; used with a class (default {cfg_scale:g})")
    parser.add_argument("--class", dest="class_label", type=parse_class, default=class_label,
                        help=f"class label of class-conditional models: N, '{CLASS_PER_SEED}' (seed s takes class "
                             f"s mod K) or 'none' (unconditional; default {class_label or 'none'})")


class _DeprecatedAlias(argparse.Action):
    """An old option that sets its new option's value and says so in one line on stderr."""

    def __init__(self, option_strings, dest, new_option: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new_option = new_option

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: note: {option_string} is deprecated, use {self.new_option}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str, type=None) -> None:
    """Accept ``old`` (hidden from ``--help``) as ``new``, which stores into ``dest``, with a deprecation note."""
    parser.add_argument(old, dest=dest, type=type, action=_DeprecatedAlias, new_option=new,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
