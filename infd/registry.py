"""Model kinds: a name for every model class, so a checkpoint can rebuild its model from its config.

Every model class takes one config dataclass (``Model(config)``) and keeps it as ``model.config``.
``@register_model("kind", ConfigClass)`` records the pair; ``infd.checkpoint`` stores the kind and the
config in each file and uses this table to rebuild the model on load.
"""
from __future__ import annotations

MODEL_KINDS: dict[str, tuple[type, type]] = {}


def register_model(kind: str, config_cls: type):
    """Class decorator: make ``cls(config_cls(...))`` loadable from checkpoints under ``kind``."""

    def wrap(cls):
        if kind in MODEL_KINDS and MODEL_KINDS[kind][0] is not cls:
            raise ValueError(f"model kind '{kind}' is registered twice")
        MODEL_KINDS[kind] = (cls, config_cls)
        cls.model_kind = kind
        return cls

    return wrap


def kind_of(model) -> str:
    """The registered kind of ``model`` (raises ``TypeError`` for unregistered classes)."""
    kind = getattr(type(model), "model_kind", None)
    if kind is None:
        raise TypeError(f"{type(model).__name__} is not a registered model (use @register_model)")
    return kind


def import_builtin_models():
    """Import the project's model modules so their kinds are registered."""
    import importlib

    for name in ("infd.models.autoencoder", "infd.models.unet", "infd.models.uvit", "infd.losses",
                 "infd.diffusion.bundle"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # a real missing dependency inside the module
                raise
