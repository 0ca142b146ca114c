"""Writing shards: original bytes round-trip, bad files are listed not fatal, limits hold."""
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infd.data.shards import ShardError, ShardWriter, check_pattern, list_images, write_shards

from tool_testing import ROOT, load_tool


def write_image(path: Path, size=(24, 16), fmt=None, seed=0, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path, fmt)
    return path


def make_folder(root: Path) -> dict:
    """Good images of every accepted extension, plus bad files; returns {relative path: bytes}."""
    good = {}
    for i, name in enumerate(["b/photo.jpg", "a/one.JPEG", "a/two.png", "c/d/three.webp", "four.bmp",
                              "five.tif", "six.tiff"]):
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP",
               "tif": "TIFF", "tiff": "TIFF"}[name.rsplit(".", 1)[1].lower()]
        good[name] = write_image(root / name, fmt=fmt, seed=i).read_bytes()
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("not an image")
    jpeg = io.BytesIO()
    Image.fromarray(np.random.RandomState(9).randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (root / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "readme.txt").write_text("ignored: not an image extension")
    (root / ".hidden.png").write_bytes(good["a/two.png"])
    return good


def read_shards(paths) -> list[tuple[str, dict]]:
    samples = {}
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, ext = member.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return sorted(samples.items())


def test_round_trip_keeps_bytes_and_lists_bad_files(tmp_path):
    good = make_folder(tmp_path / "src")
    files = list_images(tmp_path / "src")
    relative = [f.relative_to(tmp_path / "src").as_posix() for f in files]
    assert relative == sorted(relative) and "readme.txt" not in relative and ".hidden.png" not in relative
    summary = write_shards(files, tmp_path / "src", str(tmp_path / "out" / "s-%04d.tar"), max_count=3)
    assert summary.written == len(good) == 7
    assert sorted(path for path, _ in summary.skipped) == ["cut.jpg", "empty.png", "notes.png"]
    reasons = dict(summary.skipped)
    assert "empty" in reasons["empty.png"] and "not a recognised image" in reasons["notes.png"]
    assert "corrupt" in reasons["cut.jpg"]
    assert [Path(p).name for p in summary.shards] == ["s-0000.tar", "s-0001.tar", "s-0002.tar"]
    samples = read_shards(summary.shards)
    assert [key for key, _ in samples] == [f"{i:08d}" for i in range(7)]
    for key, files_in_sample in samples:
        meta = json.loads(files_in_sample.pop("json"))
        (ext, data), = files_in_sample.items()
        assert data == good[meta["source"]]  # original bytes, no re-encode
        assert meta["source"].lower().endswith(ext)
        assert (meta["width"], meta["height"]) == (24, 16) and meta["bytes"] == len(data)
    assert not list((tmp_path / "out").glob("*.tmp"))
    assert "images written: 7" in summary.format() and "cut.jpg" in summary.format()


def test_shards_are_deterministic(tmp_path):
    make_folder(tmp_path / "src")
    outputs = []
    for run in range(2):
        files = list_images(tmp_path / "src")
        summary = write_shards(files, tmp_path / "src", str(tmp_path / f"out{run}" / "s-%02d.tar"))
        outputs.append([Path(p).read_bytes() for p in summary.shards])
    assert outputs[0] == outputs[1]


def test_max_size_limits_shard_bytes(tmp_path):
    writer = ShardWriter(str(tmp_path / "s-%03d.tar"), max_count=100, max_size=40_000)
    for i in range(10):
        writer.write(f"{i:08d}", {"bin": os.urandom(9000)})
    writer.write("big", {"bin": os.urandom(60_000)})  # alone over the limit: gets its own shard
    paths = writer.close()
    sizes = [Path(p).stat().st_size for p in paths]
    assert all(size <= 40_000 for size in sizes[:-1]) and len(paths) >= 4
    assert sum(len(names) for names in (tarfile.open(p).getnames() for p in paths)) == 11


def test_pattern_and_folder_errors(tmp_path):
    for bad in ["shards.tar", "shards-%d-%d.tar", "shards-%06d.zip"]:
        with pytest.raises(ShardError, match="shard pattern"):
            check_pattern(bad)
    with pytest.raises(ShardError, match="not found"):
        list_images(tmp_path / "missing")


def test_make_shards_tool(tmp_path, capsys):
    tool = load_tool("make_shards")
    make_folder(tmp_path / "src")
    assert tool.main([str(tmp_path / "src"), str(tmp_path / "out" / "p-%06d.tar"), "--max-count", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "images written: 7" in out and "skipped: 3" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p-000000.tar", "p-000001.tar"]
    assert tool.main([str(tmp_path / "nope"), str(tmp_path / "x-%d.tar")]) == 2
    with pytest.raises(SystemExit) as exited:
        tool.main([str(tmp_path / "src"), str(tmp_path / "x-%d.tar"), "--max-size", "lots"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 2 and "source folder not found" in err and "--max-size" in err


def test_make_shards_holds_out_a_seeded_validation_set(tmp_path, capsys):
    tool = load_tool("make_shards")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        write_image(src / f"img{i}.png", seed=i)
    out = tmp_path / "out" / "p-%06d.tar"
    assert tool.main([str(src), str(out), "--val-count", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "training set:" in printed and "validation set:" in printed
    train = [json.loads(m["json"])["source"] for _, m in read_shards(sorted((tmp_path / "out").glob("p-*.tar")))]
    val = [json.loads(m["json"])["source"] for _, m in read_shards(sorted((tmp_path / "out" / "val").glob("p-*.tar")))]
    assert len(train) == 7 and len(val) == 3 and not set(train) & set(val)
    assert sorted(train + val) == sorted(f"img{i}.png" for i in range(10))
    again = tmp_path / "again" / "p-%06d.tar"
    assert tool.main([str(src), str(again), "--val-fraction", "0.3", "--val-out", str(tmp_path / "v" / "q-%02d.tar"),
                      "--quiet"]) == 0
    assert [json.loads(m["json"])["source"] for _, m in read_shards([tmp_path / "v" / "q-00.tar"])] == val  # same seed, same draw
    assert tool.main([str(src), str(tmp_path / "x-%d.tar"), "--val-count", "10", "--quiet"]) == 2
    assert "leave at least one for training" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([str(src), str(out), "--val-count", "2", "--val-fraction", "0.1"])


def test_make_shards_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        load_tool("make_shards").main(["--help"])
    assert exited.value.code == 0 and "Examples" in capsys.readouterr().out
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    failed = subprocess.run([sys.executable, str(ROOT / "tools" / "make_shards.py"), str(tmp_path), "out.tar"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "shard pattern" in failed.stderr


@pytest.mark.parametrize("args, message", [(["--max-size", "inf"], "positive finite"),
                                           (["--max-size", "nan"], "positive finite"),
                                           (["--max-pixels", "0"], "--max-pixels must be positive")])
def test_make_shards_refuses_unbounded_or_empty_limits_in_one_line(tmp_path, capsys, args, message):
    make_folder(tmp_path / "src")
    with pytest.raises(SystemExit) as exited:
        load_tool("make_shards").main([str(tmp_path / "src"), str(tmp_path / "p-%06d.tar"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and message in err[0]
    assert not list(tmp_path.glob("p-*"))


def test_symlinked_folders_are_walked_once_and_cycles_end(tmp_path):
    """A link back up the tree and a second link to a walked folder add nothing (each image once)."""
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "c").mkdir()
    for path in (src / "a" / "one.png", src / "a" / "b" / "two.png", src / "c" / "three.png"):
        Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    (src / "a" / "b" / "loop").symlink_to(src / "a", target_is_directory=True)  # a cycle
    (src / "a" / "b" / "up").symlink_to(src, target_is_directory=True)  # a cycle through the root
    (src / "z_again").symlink_to(src / "c", target_is_directory=True)  # a second name for a folder
    (src / "external").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "elsewhere" / "four.png")
    names = sorted(p.name for p in list_images(src))
    assert names == ["four.png", "one.png", "three.png", "two.png"]
