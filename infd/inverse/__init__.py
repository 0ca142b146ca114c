"""Inverse problems at any scale with the neural-field prior (INFD's "any-scale conditions").

- ``conditions``: terms (``ClipText``, ``Pixels``, ``MaskedPixels``) on boxes of the virtual output
  (``infd.renderers.coords.FractionalWindow``, rendered as ``Region.from_fractions``), and their weighted sum.
- ``layout``: YAML/JSON layout files, checked into ``TermSpec``s (one-line ``LayoutError``).
- ``clip``: a transformers ``CLIPModel`` loaded from a local directory (``load_clip``).
- ``guided``: guidance during sampling; ``optimize``: Adam on the latent (and field) from a sample.
- ``draw``: the layout's boxes drawn over a result.

Import from the submodules; this package imports nothing itself.
"""
