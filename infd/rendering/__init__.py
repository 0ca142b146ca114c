"""Any-resolution rendering: tiles of a virtual H x W image, rendered from a field, written to a sink.

- ``engine``: plan tiles, choose their size from free memory, render them (``render``,
  ``iter_render``, ``render_latent``).
- ``sinks``: in-memory tensor, PNG (8/16-bit, streamed), JPEG/WebP, tiled (Big)TIFF (streamed).
- ``distributed``: split samples and tiles across ranks; assemble shared images in a tile store.
- ``request`` / ``formats`` (no torch): parse and check a command-line request before any work.
- ``sampling``: the model to render with and the latents it decodes (the diffusion seam).
- ``job``: run a request on one or many ranks (used by ``tools/render.py``).

Import from the submodules (``from infd.rendering.engine import render``); this package imports
nothing itself, so the command line can check its arguments before loading torch.
"""
