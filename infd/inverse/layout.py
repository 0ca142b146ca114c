"""Layout files: a YAML or JSON list of conditions on boxes of the output, checked before any solving.

    terms:
      - kind: clip_text              # CLIP similarity of the rendered box to a prompt
        box: [0.0, 0.0, 0.5, 1.0]    # y0, x0, y1, x1 in [0, 1] of the output (top half)
        prompt: a blue sky
        resolution: 224              # N or [h, w] (default: the CLIP input size)
        cutouts: 8                   # random crops per step (default 0: the whole box)
        weight: 1.0
      - kind: pixels                 # match an image when the box is rendered at its size
        box: [0, 0, 1, 1]
        image: photo_64.png          # relative to the layout file
      - kind: masked_pixels          # the same on the known pixels only (inpainting, outpainting)
        box: [0, 0, 1, 1]
        image: photo.png
        known_mask: mask.png         # white (>= 0.5) = known pixels to keep, black = to fill in
      - kind: class_label            # tools/render.py --canvas grow --labels: this class in the box
        box: [0.5, 0, 1, 1]          # (a class-conditional prior; label null = unconditional there)
        label: 3

``resolution`` of an image term defaults to the image's size (a different one resizes the image).
Every term may have a ``name`` (default ``<kind><index>``) and a ``weight`` (default 1). A bad layout
(unknown kind or key, box outside [0, 1], missing image, resolution 0, ...) is one ``LayoutError`` line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from infd.config import short_repr, yaml_load
from infd.renderers.windows import FractionalWindow, check_resolution

TERM_KEYS = {
    "clip_text": {"prompt", "cutouts"},
    "pixels": {"image"},
    "masked_pixels": {"image", "known_mask"},
    "class_label": {"label"},
}
CONDITION_KINDS = ("clip_text", "pixels", "masked_pixels")  # tools/inverse.py; class_label is tools/render.py's
COMMON_KEYS = {"kind", "box", "resolution", "weight", "name"}
MAX_TERM_SIDE = 4096  # pixels a side a term renders at (the output itself can be any size)
REQUIRED_KEYS = {"clip_text": ("box", "prompt"), "pixels": ("box", "image"), "masked_pixels": ("box", "image", "known_mask"),
                 "class_label": ("box",)}


class LayoutError(ValueError):
    """An invalid layout file (one line, shown to the user as is)."""


@dataclass(frozen=True)
class TermSpec:
    """One condition as written in the layout (files resolved to paths, nothing loaded yet)."""

    kind: str
    name: str
    box: FractionalWindow
    resolution: tuple[int, int] | None = None  # None: the image's size, or the CLIP input size
    weight: float = 1.0
    prompt: str | None = None
    cutouts: int = 0
    image: Path | None = None
    known_mask: Path | None = None
    label: int | None = None  # class_label: the class (None: unconditional in the box)


@dataclass(frozen=True)
class Layout:
    terms: tuple[TermSpec, ...]
    source: str = "<layout>"

    @property
    def needs_clip(self) -> bool:
        return any(t.kind == "clip_text" for t in self.terms)

    def require_kinds(self, kinds: tuple[str, ...], purpose: str) -> None:
        """``LayoutError`` naming the first term whose kind is not one of ``kinds`` (what ``purpose`` takes)."""
        for t in self.terms:
            if t.kind not in kinds:
                raise LayoutError(f"{self.source}: term '{t.name}' is a {t.kind} term; {purpose} takes "
                                  f"{', '.join(kinds)} terms")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _parse_term(raw, index: int, base_dir: Path) -> TermSpec:
    where = f"term {index}"
    if not isinstance(raw, dict):
        raise LayoutError(f"{where} must be a mapping with a 'kind', got {short_repr(raw)}")
    kind = raw.get("kind")
    if kind not in TERM_KEYS:
        raise LayoutError(f"{where}: unknown term kind {short_repr(kind)} (known: {', '.join(TERM_KEYS)})")
    where = f"term {index} ({kind})"
    unknown = sorted(set(raw) - COMMON_KEYS - TERM_KEYS[kind])
    if unknown:
        valid = ", ".join(sorted(COMMON_KEYS | TERM_KEYS[kind]))
        raise LayoutError(f"{where}: unknown key '{unknown[0]}' (valid keys: {valid})")
    for key in REQUIRED_KEYS[kind]:
        if raw.get(key) is None:
            raise LayoutError(f"{where}: missing '{key}'")
    box = raw["box"]
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise LayoutError(f"{where}: box must be four numbers [y0, x0, y1, x1], got {short_repr(box)}")
    try:
        box = FractionalWindow(*(float(v) for v in box))
        resolution = None if raw.get("resolution") is None else check_resolution(
            tuple(raw["resolution"]) if isinstance(raw["resolution"], list) else raw["resolution"])
    except (ValueError, TypeError) as err:
        raise LayoutError(f"{where}: {err}") from None
    if resolution is not None and max(resolution) > MAX_TERM_SIDE:
        raise LayoutError(f"{where}: resolution {list(resolution)} is larger than {MAX_TERM_SIDE} a side (a term is "
                          f"rendered at its resolution in memory, with gradients)")
    weight = raw.get("weight", 1.0)
    if not _is_number(weight) or weight < 0:
        raise LayoutError(f"{where}: weight must be a number >= 0, got {short_repr(weight)}")
    name = raw.get("name", f"{kind}{index}")
    if not isinstance(name, str) or not name:
        raise LayoutError(f"{where}: name must be a non-empty string, got {short_repr(name)}")
    fields = dict(kind=kind, name=name, box=box, resolution=resolution, weight=float(weight))
    if kind == "clip_text":
        if not isinstance(raw["prompt"], str) or not raw["prompt"].strip():
            raise LayoutError(f"{where}: prompt must be a non-empty string, got {short_repr(raw['prompt'])}")
        cutouts = raw.get("cutouts", 0)
        if not isinstance(cutouts, int) or isinstance(cutouts, bool) or cutouts < 0:
            raise LayoutError(f"{where}: cutouts must be an integer >= 0, got {short_repr(cutouts)}")
        fields.update(prompt=raw["prompt"], cutouts=cutouts)
    if kind == "class_label":
        if "label" not in raw:
            raise LayoutError(f"{where}: missing 'label' (a class, or null for unconditional)")
        label = raw["label"]
        if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
            raise LayoutError(f"{where}: label must be an integer >= 0 or null, got {short_repr(label)}")
        fields["label"] = label
    for key in ("image", "known_mask"):
        if key in TERM_KEYS[kind]:
            if not isinstance(raw[key], str):
                raise LayoutError(f"{where}: {key} must be a file path, got {short_repr(raw[key])}")
            path = base_dir / raw[key]
            if not path.is_file():
                raise LayoutError(f"{where}: {key} not found: {path}")
            fields[key] = path
    return TermSpec(**fields)


def parse_layout(data, base_dir: str | Path = ".", source: str = "<layout>") -> Layout:
    """A ``Layout`` from parsed YAML/JSON (``{terms: [...]}``); image paths are relative to ``base_dir``."""
    try:
        if not isinstance(data, dict) or set(data) != {"terms"}:
            keys = sorted(set(data) - {"terms"}) if isinstance(data, dict) else None
            raise LayoutError(f"unknown top-level key '{keys[0]}' (a layout has only 'terms')" if keys
                              else "a layout is a mapping with one key, 'terms': a list of conditions")
        terms = data["terms"]
        if not isinstance(terms, list) or not terms:
            raise LayoutError("'terms' must be a non-empty list of conditions")
        specs = tuple(_parse_term(raw, i, Path(base_dir)) for i, raw in enumerate(terms))
        names = [t.name for t in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise LayoutError(f"term name '{duplicates[0]}' is used twice")
    except LayoutError as err:
        raise LayoutError(f"{source}: {err}") from None
    return Layout(specs, source)


def load_layout(path: str | Path) -> Layout:
    """Read and check a ``.yaml``/``.yml``/``.json`` layout file; ``LayoutError`` (one line) if it is bad."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"layout file not found: {path}")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        text = getattr(err, "problem", None) or str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise LayoutError(f"{path}: cannot parse: {first}") from None
    return parse_layout(data, path.parent, str(path))
