"""Shared pieces of the command-line tools in tools/ (argument parsing only; no torch import)."""
from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line and exit code 2 (argparse would print the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def fail(self, err: Exception) -> int:
        """Print ``err`` as one ``prog: error:`` line on stderr; the exit code to return (2)."""
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        return 2
