"""CLIF's inference path, beside the method: ``FastCLIF(clif, workers)`` computes ``clif``'s function on
regular grids with less work (first conv at field resolution, Winograd hidden convs on CPU, banded work
on Python threads). The caller builds it explicitly (``infd.rendering.engine.prepare_renderer`` does,
for every render); ``renderers/clif.py`` stays the paper's math, which training differentiates.
"""
from .clif import WINOGRAD_MIN_CHANNELS, FastCLIF, uses_winograd

__all__ = ["FastCLIF", "WINOGRAD_MIN_CHANNELS", "uses_winograd"]
