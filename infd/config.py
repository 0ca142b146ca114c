"""Typed configs: YAML/JSON/dicts load into dataclasses; unknown or mistyped keys fail by name.

Every model and experiment is described by a dataclass. ``from_dict(Cls, data)`` builds one
recursively (nested dataclasses, tuples, optionals, ``dict`` fields) and raises ``ConfigError``
with the dotted key path on the first problem, e.g. ``unknown config key 'model.renderer.hiden'``.
"""
from __future__ import annotations

import dataclasses
import json
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that does not match its dataclass (unknown key, wrong type, bad value)."""


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp, value, path: str):
    """Convert ``value`` to the annotated type ``tp`` or raise ``ConfigError`` naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: no type of {tp} accepts {short_repr(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config key '{path}' must be one of {list(args)}, got {short_repr(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping for {tp.__name__}, got {short_repr(value)}")
        return from_dict(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {short_repr(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"config key '{path}' must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {short_repr(value)}")
        return dict(value)
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {short_repr(value)}")
        inner = args[0] if args else Any
        return [_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}' must be true/false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}' must be an integer, got {short_repr(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}' must be a number, got {short_repr(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}' must be a string, got {short_repr(value)}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"config key '{path}' must be {_type_name(tp)}, got {short_repr(value)}")
    return value


def from_dict(cls: type[T], data: dict, path: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys raise ``ConfigError`` with their path."""
    if not isinstance(data, dict):
        raise ConfigError(f"config '{path or cls.__name__}' must be a mapping, got {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{key_path}' (valid keys: {', '.join(fields)})")
        kwargs[key] = _convert(hints[key], value, key_path)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if not path:
            raise
        # a nested class's own checks name keys relative to it: give the full dotted path
        raise ConfigError(str(err).replace("config key '", f"config key '{path}.")) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path or cls.__name__}: {err}") from None


def short_repr(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages never format an unbounded value (a YAML
    alias bomb expands to gigabytes)."""
    if isinstance(value, (dict, list, tuple, set)) and len(value) > limit:
        return f"<{type(value).__name__} of {len(value)} items>"
    text = reprlib.repr(value) if isinstance(value, (dict, list, tuple, set)) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


MAX_YAML_NODES = 100_000  # far above any config or layout; a "billion laughs" file expands past it at once


def _expanded_size(node, limit: int) -> int:
    """Nodes of a composed YAML document counted with every alias expanded, stopping past ``limit``."""
    import yaml

    total, stack = 0, [node]
    while stack:
        node = stack.pop()
        total += 1
        if total > limit:
            break
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
    return total


def to_dict(config) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def yaml_load(text: str, max_nodes: int = MAX_YAML_NODES):
    """``yaml.safe_load`` with YAML 1.2's scalars: only true/false are booleans (``no``, ``on`` stay
    strings, e.g. ``mixed_precision: no``) and ``1e-4`` is a float, as users type them. A document that
    expands (aliases included) to more than ``max_nodes`` nodes raises ``yaml.YAMLError`` before any of
    it is built."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag not in
                                          ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")]
                                      for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
        list("-+0123456789."))
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, max_nodes) > max_nodes:
            error = yaml.YAMLError()
            error.problem = f"the document expands to more than {max_nodes} nodes (YAML aliases?); refusing to build it"
            raise error
        return loader.construct_document(node)
    finally:
        loader.dispose()


_yaml_load = yaml_load


def load_config(cls: type[T], path: str | Path, overrides: dict | None = None) -> T:
    """Load a YAML or JSON file into ``cls``; a missing file or bad YAML is a one-line ``ConfigError``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _yaml_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"cannot parse config {path}: not a text file") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"cannot parse config {path}{where}: {getattr(err, 'problem', err)}") from None
    if overrides:
        data = merge(data, overrides)
    return from_dict(cls, data)


def merge(base: dict, overrides: dict) -> dict:
    """Recursively merge ``overrides`` into a copy of ``base``."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict:
    """``["a.b=3", "c=[1,2]"]`` -> ``{"a": {"b": 3}, "c": [1, 2]}`` (values parsed as YAML 1.2 scalars:
    ``lr=1e-4`` is a number, ``mixed_precision=no`` a string); unparsable values are a ``ConfigError``."""
    import yaml

    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override must look like key.path=value, got {short_repr(item)}")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        try:
            node[leaf] = _yaml_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"cannot parse the value of --set {key}: {getattr(err, 'problem', None) or err}") from None
    return out
