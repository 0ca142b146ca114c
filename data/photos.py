"""Real photographs available offline from two Debian packages (for demos, tests of scale, the
bundled model). Only photographs are listed; the packages' artwork and renders are left out.

Install: ``apt-get update && apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04``.
The images stay under /usr/share and are never copied into the repository.
"""
from __future__ import annotations

import re
from pathlib import Path

INSTALL_HINT = "apt-get update && apt-get install -y plasma-workspace-wallpapers lomiri-wallpapers-16.04"

# /usr/share/wallpapers/<name>/contents/images/<W>x<H>.jpg, several sizes of each photo
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                 "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
# /usr/share/backgrounds/<file> (umang_by_Abhishek_Mudgal.jpg, a colour gradient, is artwork)
LOMIRI_PHOTOS = ("Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
                 "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
                 "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg",
                 "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
                 "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
                 "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg")


def _pixels(path: Path) -> int:
    match = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    return int(match[1]) * int(match[2]) if match else 0


def find_debian_photos(root: str | Path = "/usr/share", size: str | None = None) -> tuple[list[Path], list[str]]:
    """``(found, missing)``: the photo files, and the names not found (package not installed).

    ``size="2560x1600"`` keeps only the Plasma photos at that size (the benchmark set); by
    default every photo at its largest size.
    """
    root = Path(root)
    found, missing = [], []
    for name in PLASMA_PHOTOS:
        folder = root / "wallpapers" / name / "contents" / "images"
        candidates = sorted(folder.glob("*.jpg"), key=_pixels) if folder.is_dir() else []
        if size is not None:
            candidates = [c for c in candidates if c.stem == size]
        if candidates:
            found.append(candidates[-1])
        else:
            missing.append(f"wallpapers/{name}" + (f" ({size})" if size else ""))
    if size is None:
        for name in LOMIRI_PHOTOS:
            path = root / "backgrounds" / name
            if path.is_file():
                found.append(path)
            else:
                missing.append(f"backgrounds/{name}")
    return found, missing
