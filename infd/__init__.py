"""infd: any-resolution neural-field diffusion.

The Python API (``infd.pipeline``, imported on first use so that ``import infd.cli`` stays light)::

    import infd
    pipe = infd.load()                       # the bundled model
    images = pipe.sample(seeds=[0, 1], height=768, width=1024, steps=30)
"""
_API = {"load": "load", "save": "save", "Pipeline": "Pipeline"}


def __getattr__(name: str):
    if name in _API:
        from . import pipeline

        return getattr(pipeline, _API[name])
    if name == "Region":
        from .renderers.coords import Region

        return Region
    raise AttributeError(f"module 'infd' has no attribute {name!r}")


__all__ = ["load", "save", "Pipeline", "Region"]
