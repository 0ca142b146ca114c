"""The photo catalogue and tools/make_photo_shards.py: split by source, licence and author per
photo, both splits written from a fake install, one-line messages for missing packages."""
import io
import json
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infd.data.photos import PHOTOS, SCENES, SOURCES, SPLITS, Photo, find_debian_photos

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_photo_shards  # noqa: E402


def test_split_is_by_source():
    splits = {}
    for photo in PHOTOS:
        splits.setdefault(photo.source, set()).add(photo.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {SOURCES[s][0] for s in ("scikit-image", "scikit-learn", "matplotlib")} == {"heldout"}
    assert {p.split for p in PHOTOS} == set(SPLITS)


def test_every_photo_has_author_and_licence():
    assert len({(p.source, p.path) for p in PHOTOS}) == len(PHOTOS)
    for photo in PHOTOS:
        assert photo.author.strip() and photo.licence.strip(), photo


def fake_install(tmp_path: Path) -> tuple[Path, Path]:
    """Tiny images at every listed path, in the packages' layout."""
    debian, site = tmp_path / "usr_share", tmp_path / "site"
    rs = np.random.RandomState(0)
    for photo in PHOTOS:
        root = debian if photo.split == "train" else site
        path = root / photo.path
        if photo.source == "plasma-workspace-wallpapers":
            path = path / "40x30.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        array = rs.randint(0, 256, (30, 40, 3), dtype=np.uint8)
        Image.fromarray(array).save(path, "PNG" if path.suffix == ".png" else "JPEG")
    return debian, site


def read_json(pattern: str) -> list[dict]:
    metas = []
    for shard in sorted(Path(pattern).parent.glob("*.tar")):
        with tarfile.open(shard) as tar:
            metas += [json.load(tar.extractfile(m)) for m in tar if m.name.endswith(".json")]
    return metas


def test_both_splits_from_a_fake_root(tmp_path, capsys):
    debian, site = fake_install(tmp_path)
    out = tmp_path / "out"
    assert make_photo_shards.main([str(out), "--root", str(debian), "--python-root", str(site), "--quiet"]) == 0
    printed = capsys.readouterr().out
    for split in SPLITS:
        metas = read_json(str(out / split / "x"))
        expected = [p for p in PHOTOS if p.split == split]
        assert len(metas) == len(expected)
        assert {m["split"] for m in metas} == {split}
        assert {(m["source"], m["author"], m["licence"]) for m in metas} == \
            {(p.source, p.author, p.licence) for p in expected}
        assert {m["source"] for m in metas} <= {s for s, (home, _) in SOURCES.items() if home == split}
        assert f"{split}: {len(expected)} photos" in printed
        by_author = {(p.source, p.author, p.scene) for p in expected}
        assert {(m["source"], m["author"], m["scene"]) for m in metas} == by_author
        assert all(m["label"] == SCENES.index(m["scene"]) for m in metas)


def test_every_photo_has_a_scene_class_and_the_training_split_has_each():
    assert all(p.scene in SCENES and p.label == SCENES.index(p.scene) for p in PHOTOS)
    train = Counter(p.scene for p in PHOTOS if p.split == "train")
    assert set(train) == set(SCENES) and min(train.values()) >= 5  # every class has photos to learn from
    with pytest.raises(ValueError, match="is not one of"):
        Photo("scikit-image", "x.png", "a", "b", scene="city")


def test_held_out_source_refused_in_train(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_photo_shards.main([str(tmp_path / "p-%06d.tar"), "--sources", "scikit-image,scikit-learn"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "never goes into train" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_missing_packages_are_one_line(tmp_path, capsys):
    debian, site = fake_install(tmp_path)
    import shutil
    shutil.rmtree(debian / "wallpapers")  # plasma not installed
    pattern = str(tmp_path / "out" / "p-%06d.tar")
    assert make_photo_shards.main([pattern, "--root", str(debian), "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "plasma-workspace-wallpapers" in warnings[0] and "apt-get install" in warnings[0]
    assert all(m["source"] != "plasma-workspace-wallpapers" for m in read_json(pattern))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert make_photo_shards.main([str(tmp_path / "none"), "--root", str(empty), "--python-root", str(empty),
                                   "--quiet"]) == 2
    assert "error: no photos found" in capsys.readouterr().err


def test_original_debian_set_kept(tmp_path):
    debian, _ = fake_install(tmp_path)
    found, missing = find_debian_photos(debian)
    assert len(found) == 25 and not missing
    assert len(find_debian_photos(debian, size="40x30")[0]) == 11
