"""Shared pieces of the command-line tools in tools/ (argument parsing only; no torch import)."""
from __future__ import annotations

import argparse
import sys

from infd.diffusion.sampling import SAMPLER_NAMES


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line and exit code 2 (argparse would print the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def fail(self, err: Exception) -> int:
        """Print ``err`` as one ``prog: error:`` line on stderr; the exit code to return (2)."""
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        return 2


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sampler``, ``--cfg-scale`` and ``--class``: the fields of a ``SamplingSpec`` besides its steps."""
    parser.add_argument("--sampler", default="ddim", help=f"{', '.join(SAMPLER_NAMES)} (default ddim)")
    parser.add_argument("--cfg-scale", type=float, default=1.0,
                        help="classifier-free guidance scale w, out_u + w (out_c - out_u): 1 is the conditional "
                             "model, 0 the unconditional one (default 1)")
    parser.add_argument("--class", dest="class_label", type=int, help="class label (class-conditional models)")


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
