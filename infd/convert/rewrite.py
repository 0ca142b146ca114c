"""The file side of model surgery: read an autoencoder, transform it, write the result beside it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..checkpoint import read_checkpoint, save_model
from ..cli import refuse_overwrite
from ..models.autoencoder import NeuralFieldAutoencoder, load_autoencoder


def rewrite_autoencoder(src: str | Path, dst: str | Path, transform: Callable, origin_key: str):
    """``transform`` the autoencoder at ``src`` (or a bundle's) and save it to ``dst`` (never over ``src``).

    The input's ``step`` metadata carries over and ``origin_key`` records ``src``. Returns
    ``(old model, new model, step)``.
    """
    refuse_overwrite([dst], [src], what="dst")
    model: NeuralFieldAutoencoder = load_autoencoder(src)
    new = transform(model)
    step = read_checkpoint(src)[1].get("step", "0")
    save_model(new, dst, extra={"step": step, origin_key: str(src)})
    return model, new, step
