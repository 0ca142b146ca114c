"""Neural-field renderers and the coordinate convention they share.

Every renderer meets one contract::

    rgb = renderer(phi (B, C, h, w), coord (B, H, W, 2), cell (B, 2) | (B, H, W, 2))  # (B, 3, H, W)

where a regular grid may come as its axes instead, ``coord = QueryGrid(ys (B, H), xs (B, W))``,
and exposes ``radius``: how many query pixels away an output pixel can see. Renderers are local (no
statistics over the query grid), so rendering padded tiles gives the same pixels as a full render
(``render_region``; ``infd.rendering.engine.render`` assembles whole images from such tiles).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from infd.config import ConfigError, from_dict

from .clif import CLIF, CLIFConfig
from .conv_head import ConvHead, ConvHeadConfig
from .coords import (QueryGrid, Region, as_grid, iter_tiles, make_axes, make_cell, make_coord, make_query,
                     make_query_grid, pixel_centres)
from .liif import LIIF, LIIFConfig
from .region import render_region

RENDERERS = {"clif": (CLIF, CLIFConfig), "liif": (LIIF, LIIFConfig), "conv_head": (ConvHead, ConvHeadConfig)}


@dataclass
class RendererConfig:
    """``{name, args}``: ``name`` picks the renderer, ``args`` fills its own typed config."""

    name: str = "clif"
    args: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.name not in RENDERERS:
            raise ConfigError(f"unknown renderer '{self.name}' (choose from {', '.join(RENDERERS)})")
        from_dict(RENDERERS[self.name][1], self.args, "args")  # validate keys early (from_dict prefixes the parent path)


def make_renderer(config: RendererConfig, field_channels: int | None = None) -> nn.Module:
    """Build the renderer named by ``config``; ``field_channels`` fills in the field width if given."""
    cls, args_cls = RENDERERS[config.name]
    args = dict(config.args)
    if field_channels is not None:
        args.setdefault("field_channels", field_channels)
    return cls(from_dict(args_cls, args, "renderer.args"))


__all__ = [
    "CLIF", "CLIFConfig", "LIIF", "LIIFConfig", "ConvHead", "ConvHeadConfig", "RendererConfig",
    "make_renderer", "QueryGrid", "Region", "as_grid", "iter_tiles", "make_axes", "make_cell", "make_coord",
    "make_query", "make_query_grid", "pixel_centres", "render_region",
]
