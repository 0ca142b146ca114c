"""No tool replaces one of its inputs, and a shard reader keeps every complete sample (issue 16, data loss)."""
import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from process_testing import run_group
from infd.cli import UsageError, refuse_overwrite
from infd.data.shards import read_shard

ROOT = Path(__file__).resolve().parents[1]


def tool(name, *args, cwd):
    return run_group([sys.executable, str(ROOT / "tools" / name), *map(str, args)], cwd=cwd, timeout=240)


def png_bytes(seed=0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def assert_refused(result, *unchanged: tuple[Path, bytes]):
    assert result.returncode == 2, result.stderr
    assert "would overwrite the input" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    for path, before in unchanged:
        assert path.read_bytes() == before, path


def test_cache_latents_refuses_an_output_pattern_that_names_its_input_shard(tmp_path):
    shard = tmp_path / "photos-000000.tar"
    write_tar(shard, [("a.png", png_bytes()), ("a.json", b"{}")])
    before = shard.read_bytes()
    result = tool("cache_latents.py", "--checkpoint", ROOT / "infd/weights/default.safetensors", "--data", shard,
                  "--out", tmp_path / "photos-%06d.tar", cwd=tmp_path)
    assert_refused(result, (shard, before))


def test_inverse_refuses_an_output_that_is_an_image_of_its_layout(tmp_path):
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes())
    layout = tmp_path / "sr.yaml"
    layout.write_text("terms:\n  - kind: pixels\n    box: [0, 0, 1, 1]\n    image: photo.png\n")
    before = image.read_bytes()
    result = tool("inverse.py", "--layout", layout, "--size", "64", "--out", image, cwd=tmp_path)
    assert_refused(result, (image, before))


def test_render_refuses_an_output_that_is_its_checkpoint(tmp_path):
    checkpoint = tmp_path / "m.png"
    checkpoint.write_bytes((ROOT / "infd/weights/default.safetensors").read_bytes()[:4096])
    before = checkpoint.read_bytes()
    assert_refused(tool("render.py", "--checkpoint", checkpoint, "--size", "16", "--out", checkpoint, cwd=tmp_path),
                   (checkpoint, before))
    link = tmp_path / "same.png"
    link.hardlink_to(checkpoint)  # another name of the same file: compared by inode
    assert_refused(tool("render.py", "--checkpoint", checkpoint, "--size", "16", "--out", link, cwd=tmp_path),
                   (checkpoint, before))


def test_refuse_overwrite_compares_resolved_paths_and_pattern_expansions(tmp_path):
    shard = tmp_path / "x-000012.tar"
    shard.touch()
    with pytest.raises(UsageError):
        refuse_overwrite([str(tmp_path / "sub" / ".." / "x-%06d.tar")], [shard])
    refuse_overwrite([str(tmp_path / "y-%06d.tar"), tmp_path / "out.png"], [shard])  # different names pass


@pytest.mark.parametrize("cut", ["inside_member", "inside_header"])
def test_read_shard_yields_every_complete_sample_before_a_truncated_member(tmp_path, cut):
    path = tmp_path / "s.tar"
    members = [(f"{k}.{ext}", data) for k in ("a", "b", "c") for ext, data in (("png", png_bytes()), ("json", b"{}"))]
    write_tar(path, members)
    data = path.read_bytes()
    # c.png's header starts after 4 members (512-byte header + data padded to 512 each).
    offset = sum(512 + -(-len(d) // 512) * 512 for _, d in members[:4])
    path.write_bytes(data[:offset + (512 + 100 if cut == "inside_member" else 200)])
    got = []
    try:  # a read error ends the shard after its complete samples (a cut header may just end it)
        for sample in read_shard(str(path)):
            got.append(sample)
    except (tarfile.TarError, OSError):
        assert cut == "inside_member"
    assert [s["__key__"] for s in got] == ["a", "b"] and all({"png", "json"} <= set(s) for s in got)
