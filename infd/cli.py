"""Shared pieces of the command-line tools in tools/ (argument parsing only; no torch import)."""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line and exit code 2 (argparse would print the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")
