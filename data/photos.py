"""Real photographs available offline, with source, author and licence per image.

Eight sources, split by source so that no source is both trained on and evaluated on:

- ``train``: the Debian packages ``plasma-workspace-wallpapers``, ``lomiri-wallpapers-16.04``,
  ``lomiri-wallpapers-20.04``, ``ukui-wallpapers`` and ``mate-backgrounds`` (files under ``/usr/share``);
- ``heldout``: the pip packages scikit-image (``skimage/data``), scikit-learn
  (``sklearn/datasets/images``, i.e. ``load_sample_images``) and matplotlib
  (``matplotlib/mpl-data/sample_data``), paths relative to the folder holding the packages.

Only photographs of scenes are listed; every other file of these sources was looked at and left
out (``EXCLUDED`` says why). The images stay where the packages put them and are never copied
into the repository. Authors and licences: the Debian ``copyright`` files, Plasma's
``metadata.json`` per wallpaper, scikit-image's data docstrings, scikit-learn's images README.
The other wallpaper packages of the archive hold no photographs: ``gnome-backgrounds`` 43.1 (SVG and
WebP renders: adwaita, blobs, grid, licorice, pixels, truchet, wood, ...) and ``sway-backgrounds``
(the Sway logo on blue).
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "apt-get update && apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04"

SPLITS = ("train", "heldout")
# source -> (split, how to install it)
SOURCES = {
    "plasma-workspace-wallpapers": ("train", "apt-get install -y plasma-workspace-wallpapers"),
    "lomiri-wallpapers-16.04": ("train", "apt-get install -y lomiri-wallpapers-16.04"),
    "lomiri-wallpapers-20.04": ("train", "apt-get install -y lomiri-wallpapers-20.04"),
    "ukui-wallpapers": ("train", "apt-get install -y ukui-wallpapers"),
    "mate-backgrounds": ("train", "apt-get install -y mate-backgrounds"),
    "scikit-image": ("heldout", "python3 -m pip install scikit-image"),
    "scikit-learn": ("heldout", "python3 -m pip install scikit-learn"),
    "matplotlib": ("heldout", "python3 -m pip install matplotlib"),
}
DEBIAN_SOURCES = tuple(s for s, (split, _) in SOURCES.items() if split == "train")
PYTHON_PACKAGES = {"scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}


# Coarse scene classes, hand-labelled from looking at each photo (the class-conditional prior's labels;
# the shard JSON carries ``scene`` and ``label`` = its index). Chosen for what these photos hold:
#   water     lakes, sea and piers, a splash, with the water taking much of the frame
#   sky_land  open sky over land: mountains, fields, a beach, a sunset
#   plants    foliage, forest, moss, leaves, flowers, a bird on bark
#   objects   man-made things and close-ups indoors: cups, a bowl, brushes, lamps, a clock, architecture,
#             people and pets in front of them
SCENES = ("water", "sky_land", "plants", "objects")


@dataclass(frozen=True)
class Photo:
    """One listed photograph. ``path`` is relative to the source's root (``/usr/share`` for the
    Debian packages, the site-packages folder for the pip ones); a Plasma ``path`` is the
    wallpaper's image folder, whose largest ``<W>x<H>.jpg`` is used."""

    source: str
    path: str
    author: str
    licence: str
    scene: str = "objects"  # one of SCENES

    def __post_init__(self):
        if self.scene not in SCENES:
            raise ValueError(f"{self.path}: scene {self.scene!r} is not one of {SCENES}")

    @property
    def split(self) -> str:
        return SOURCES[self.source][0]

    @property
    def label(self) -> int:
        return SCENES.index(self.scene)


def _plasma(name: str, author: str, scene: str) -> Photo:
    # licence from the wallpaper's metadata.json (debian/copyright gives GPL-2+ for the package)
    return Photo("plasma-workspace-wallpapers", f"wallpapers/{name}/contents/images", author, "LGPL-3.0", scene)


def _lomiri(version: str, name: str, author: str, licence: str, scene: str) -> Photo:
    return Photo(f"lomiri-wallpapers-{version}", f"backgrounds/{name}", author, licence, scene)


def _mate(name: str, author: str, scene: str) -> Photo:
    # authors and licence from the package's debian/copyright (every file GPL-2+)
    return Photo("mate-backgrounds", f"backgrounds/mate/nature/{name}.jpg", author, "GPL-2+", scene)


def _skimage(name: str, author: str, licence: str, scene: str = "objects") -> Photo:
    return Photo("scikit-image", f"skimage/data/{name}", author, licence, scene)


PHOTOS = (
    _plasma("BytheWater", "Maciej Wiklo", "water"), _plasma("ColdRipple", "Risto Saukonpää", "water"),
    _plasma("ColorfulCups", "Dmitri Popov", "objects"), _plasma("DarkestHour", "Risto Saukonpää", "water"),
    _plasma("EveningGlow", "Ian Hex", "water"), _plasma("FallenLeaf", "Martin Klapetek", "plants"),
    _plasma("Grey", "Sigi Sagi", "objects"),
    _plasma("Kite", "Risto Saukonpää", "sky_land"), _plasma("OneStandsOut", "Risto Saukonpää", "plants"),
    _plasma("Path", "Risto Saukonpää", "plants"), _plasma("summer_1am", "Risto Saukonpää", "water"),
    _lomiri("16.04", "Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0", "sky_land"),
    _lomiri("16.04", "Dragonfly_by_Bolly.jpg", "Bolly", "CC-BY-SA-4.0", "plants"),
    _lomiri("16.04", "Picture_0B_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0", "objects"),
    _lomiri("16.04", "Picture_1A_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0", "objects"),
    _lomiri("16.04", "Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0", "objects"),
    _lomiri("16.04", "aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "sky_land"),
    _lomiri("16.04", "analogpattern_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0", "objects"),
    _lomiri("16.04", "free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0", "objects"),
    _lomiri("16.04", "friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "objects"),
    _lomiri("16.04", "greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0", "objects"),
    _lomiri("16.04", "life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "plants"),
    _lomiri("16.04", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "sky_land"),
    _lomiri("16.04", "seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0", "plants"),
    _lomiri("16.04", "sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0", "sky_land"),
    _lomiri("20.04", "Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0", "plants"),
    # ukui-wallpapers: no photographs (all twelve files are digital artwork)
    _mate("Aqua", "Charles Barbin", "water"), _mate("Blinds", "Lennart Poettering, Andrea Cimitan", "plants"),
    _mate("Dune", "Marco Cogoni, Hylke Bons", "sky_land"), _mate("FreshFlower", "Jens Ansorg", "plants"),
    _mate("Garden", "Charles Barbin", "plants"), _mate("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei", "plants"),
    _mate("LadyBird", "Charles Barbin", "plants"), _mate("RainDrops", '"blackcombwhistler07"', "plants"),
    _mate("Storm", "Sergey Nazarov", "sky_land"), _mate("TwoWings", "Charles Barbin, Hylke Bons", "plants"),
    _mate("Wood", "Jean-François Fortin Tam", "objects"), _mate("YellowFlower", "Charles Barbin", "plants"),
    _skimage("astronaut.png", "NASA (Great Images database)", "public domain"),
    _skimage("camera.png", "Lav Varshney", "CC0-1.0"),
    _skimage("chelsea.png", "Stefan van der Walt", "CC0-1.0"),
    _skimage("coffee.png", "Rachel Michetti (courtesy of Pikolo Espresso Bar)", "CC0-1.0"),
    _skimage("coins.png", "Brooklyn Museum Collection", "no known copyright restrictions"),
    _skimage("motorcycle_left.png", "Middlebury 2014 stereo benchmark (Scharstein et al.)",
             "no restrictions stated; scikit-image redistributes it (BSD-3-Clause package)"),
    _skimage("rocket.jpg", "SpaceX", "public domain", "sky_land"),
    Photo("scikit-learn", "sklearn/datasets/images/china.jpg", "danielbuechele (Flickr)", "CC-BY-2.0", "sky_land"),
    Photo("scikit-learn", "sklearn/datasets/images/flower.jpg", "vultilion (Flickr)", "CC-BY-2.0", "plants"),
    Photo("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "U.S. Navy (official portrait of Grace Hopper)", "public domain (work of the U.S. federal government)"),
)

# every other image file of the sources, and why it is not a photograph of a scene
EXCLUDED = {
    "plasma-workspace-wallpapers": "Altai Autumn Canopee Cascade Cluster Elarun Flow FlyingKonqui Honeywave IceCold "
                                   "Kay Kokkini MilkyWay Opal PastelHills Patak SafeLanding Shell Volna: "
                                   "digital artwork and renders",
    "lomiri-wallpapers-16.04": "umang_by_Abhishek_Mudgal.jpg: a colour gradient",
    "lomiri-wallpapers-20.04": "Fossa, Painting-Colors: artwork; Infinite-Sea: a composite (geometric "
                               "overlays, synthetic sea)",
    "mate-backgrounds": "abstract/* and desktop/* (Arc-Colors, Elephants, Flow, Gulp, Silk, Spring, Waves, "
                        "Float-into-MATE, GreenTraditional, the Stripes and Ubuntu-Mate files): artwork, logos "
                        "and renders; only nature/ holds photographs",
    "ukui-wallpapers": "all 12 files (2004default calla city desert firstgeneration fluent-color "
                       "focal-ubuntukylin goldfish rhythm rollpaper string the-mouse): artwork and renders",
    "scikit-image": "motorcycle_right (the other view of the stereo pair); clock_motion (deliberately "
                    "motion-blurred); brick grass gravel (grey texture crops, brick warped); page text "
                    "(documents); hubble_deep_field moon (astronomy); retina ihc cell microaneurysms "
                    "(medical, microscopy); color chessboard_* phantom (synthetic); horse logo (drawings); "
                    "the downloadable extras (not shipped in the wheel)",
    "matplotlib": "Minduka_Present_Blue_Pack.png (an icon), logo2.png (a logo); the rest are data files",
}


def _pixels(path: Path) -> int:
    match = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    return int(match[1]) * int(match[2]) if match else 0


def site_root(source: str) -> Path | None:
    """The folder holding a pip source's package (its site-packages), or None if not installed."""
    spec = importlib.util.find_spec(PYTHON_PACKAGES[source])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent


def locate(photo: Photo, root: Path, size: str | None = None) -> Path | None:
    """The file of ``photo`` under its source root, or None (not installed / no such size)."""
    path = root / photo.path
    if photo.source != "plasma-workspace-wallpapers":
        return path if path.is_file() else None
    candidates = sorted(path.glob("*.jpg"), key=_pixels) if path.is_dir() else []
    if size is not None:
        candidates = [c for c in candidates if c.stem == size]
    return candidates[-1] if candidates else None


def find_photos(sources, debian_root: str | Path = "/usr/share",
                python_root: str | Path | None = None) -> tuple[list[tuple[Photo, Path, Path]], list[Photo]]:
    """``(found, missing)`` for the listed photos of ``sources``: ``found`` holds ``(photo, file,
    source root)``; Debian sources live under ``debian_root``, pip ones under ``python_root``
    (default: wherever the package is installed)."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown photo source(s): {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    found, missing = [], []
    for photo in PHOTOS:
        if photo.source not in sources:
            continue
        if photo.source in DEBIAN_SOURCES:
            root = Path(debian_root)
        else:
            root = Path(python_root) if python_root is not None else site_root(photo.source)
        path = locate(photo, root) if root is not None else None
        if path is None:
            missing.append(photo)
        else:
            found.append((photo, path, root))
    return found, missing


def find_debian_photos(root: str | Path = "/usr/share", size: str | None = None) -> tuple[list[Path], list[str]]:
    """``(found, missing)``: the files of the Plasma and Lomiri 16.04 photos (the original set of 25),
    and the names not found (package not installed).

    ``size="2560x1600"`` keeps only the Plasma photos at that size (the benchmark set); by
    default every photo at its largest size.
    """
    root = Path(root)
    found, missing = [], []
    for photo in PHOTOS:
        if photo.source not in ("plasma-workspace-wallpapers", "lomiri-wallpapers-16.04") or \
                (size is not None and photo.source != "plasma-workspace-wallpapers"):
            continue
        path = locate(photo, root, size)
        if path is not None:
            found.append(path)
        else:
            name = photo.path.split("/contents")[0]
            missing.append(name + (f" ({size})" if size else ""))
    return found, missing
