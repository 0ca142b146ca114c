"""The config reference: every key of a config dataclass, generated from the code.

``config_reference(cls)`` walks the dataclass (nested configs become ``part.key`` rows) and returns a
Markdown table of key, type, default and the comment written after the field in the source, so the
reference cannot drift from the code: ``tools/train.py --help-config ae`` prints it, and
``docs/config.md`` is its output for both stages (``python tools/train.py --help-config all``; a test
checks that the committed file is current).
"""
from __future__ import annotations

import dataclasses
import enum
import inspect
import io
import re
import tokenize
import types
import typing
from functools import lru_cache


@lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """``{field name: the comment after its definition, else the comment lines right above it}`` from
    ``cls``'s source (empty without source)."""
    try:
        source, first = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO("".join(source)).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    out, above = {}, []
    for number, line in enumerate(source, start=1):
        if line.lstrip().startswith("#"):
            above.append(comments[number])
            continue
        name = line.strip().split(":", 1)[0]
        if name.isidentifier() and ":" in line.split("#", 1)[0] and (number in comments or above):
            out[name] = comments[number] if number in comments else " ".join(above)
        above = []
    return out


ENTRY = re.compile(r"(?<![\w.`])((?:\w+, )*\w+): ")  # "name: text" or "a, b: text" in a docstring


@lru_cache(maxsize=None)
def docstring_entries(cls: type) -> dict[str, str]:
    """``{field name: text}`` of the ``name: text`` entries in ``cls``'s docstring (up to the next entry
    or the end of the paragraph)."""
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclasses write when a class has no docstring
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    found = [m for m in ENTRY.finditer(doc) if all(n in names for n in m.group(1).split(", "))]
    out = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(doc)
        paragraph = doc.find("\n\n", match.end())
        text = " ".join(doc[match.end():end if paragraph == -1 else min(end, paragraph)].split())
        for name in match.group(1).split(", "):
            out.setdefault(name, text)
    return out


def field_doc(cls: type, name: str) -> str:
    """What a field means: the comment after it in the source, else its entry in the class docstring."""
    return field_comments(cls).get(name) or docstring_entries(cls).get(name, "")


def _type_text(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type_text(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _default_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_default_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return repr(value) if value else "''"
    return repr(value)


def _default_of(f: dataclasses.Field, parent) -> object:
    if parent is not None:
        return getattr(parent, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def reference_rows(cls: type, prefix: str = "", instance=None) -> list[tuple[str, str, str, str]]:
    """``(key, type, default, comment)`` of every leaf key of ``cls``; ``instance`` gives the defaults of a
    nested config that its parent constructs differently (e.g. ``val_data``'s whole-image mode)."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        tp, value = hints[f.name], _default_of(f, instance)
        key = prefix + f.name
        nested = dataclasses.is_dataclass(value) and not isinstance(value, type)
        if dataclasses.is_dataclass(tp) or nested:  # a nested config (or one chosen at run time, e.g. the backbone's)
            rows += reference_rows(type(value) if nested else tp, key + ".", value if nested else None)
            continue
        default = "(required)" if value is dataclasses.MISSING else _default_text(value)
        rows.append((key, _type_text(tp), default, field_doc(cls, f.name)))
    return rows


def config_reference(cls: type, title: str, prefix: str = "", note: str = "") -> str:
    """A Markdown section: ``title``, ``note`` and the table of ``reference_rows(cls, prefix)``."""
    lines = [f"## {title}", "", *([note, ""] if note else []), "| key | type | default | meaning |", "|---|---|---|---|"]
    for key, tp, default, comment in reference_rows(cls, prefix):
        cells = [f"`{key}`", tp, f"`{default}`", comment]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def stage_references() -> dict[str, str]:
    """``{stage: Markdown}``: the reference of each of ``tools/train.py``'s stages."""
    from infd.models.uvit import UViTConfig
    from infd.training.ae_loop import AETrainConfig
    from infd.training.dm_loop import DMTrainConfig

    dm = config_reference(DMTrainConfig, "Stage 2: `tools/train.py dm` (`DMTrainConfig`)",
                          note="`diffusion.model.*` is shown for `diffusion.backbone: unet` (`UNetConfig`); the U-ViT's "
                               "keys follow.")
    uvit = config_reference(UViTConfig, "`diffusion.model` with `diffusion.backbone: uvit` (`UViTConfig`)",
                            prefix="diffusion.model.")
    return {"ae": config_reference(AETrainConfig, "Stage 1: `tools/train.py ae` (`AETrainConfig`)"),
            "dm": dm + "\n" + uvit}


HEADER = """# Training config reference

Generated from the config dataclasses by `python -m infd.config_docs > docs/config.md` (also
`tools/train.py ae --help-config`, `tools/train.py dm --help-config`); `tests/test_config_docs.py` fails when
this file is out of date. Keys are YAML paths (`data.patches.max_size`), settable with `--set KEY=VALUE`.
"""


def document() -> str:
    """The whole ``docs/config.md``."""
    return "\n".join([HEADER, *stage_references().values()])


if __name__ == "__main__":
    print(document(), end="")
