"""Neural-field renderers and the coordinate convention they share.

Every renderer meets one contract::

    rgb = renderer(phi (B, C, h, w), coord (B, H, W, 2), cell (B, 2) | (B, H, W, 2))  # (B, 3, H, W)

where a regular grid may come as its axes instead, ``coord = QueryGrid(ys (B, H), xs (B, W))``,
and exposes ``radius``: how many query pixels away an output pixel can see. Renderers are local (no
statistics over the query grid), so rendering padded tiles gives the same pixels as a full render
(``render_region``; ``infd.rendering.engine.render`` assembles whole images from such tiles).
"""
import importlib

_EXPORTS = {
    "CLIF": "clif", "CLIFConfig": "clif", "LIIF": "liif", "LIIFConfig": "liif", "ConvHead": "conv_head",
    "ConvHeadConfig": "conv_head", "RENDERERS": "factory", "RendererConfig": "factory", "make_renderer": "factory",
    "QueryGrid": "coords", "as_grid": "coords", "make_axes": "coords", "make_cell": "coords", "make_coord": "coords",
    "make_query": "coords", "make_query_grid": "coords", "pixel_centres": "coords", "render_region": "region",
    "FractionalWindow": "windows", "Region": "windows", "iter_tiles": "windows",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # Imported on first use, so the plain-Python rectangles (windows.py) load without torch.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'infd.renderers' has no attribute {name!r}")
