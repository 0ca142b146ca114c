"""Hostile tar shards: members over the size cap (a sparse "2 GB" file in a tiny shard) and unsafe member
names (``../``, absolute) are skipped unread and counted; no tar this project writes can hold such a name."""
import io
import resource
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
from PIL import Image

from infd.data import DataConfig, DecodeConfig, PatchConfig
from infd.data.pipeline import ShardDataset
from infd.data.shards import ShardError, ShardWriter, read_shard, safe_name


def png(seed: int, side: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def raw_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_unsafe_member_names_are_skipped_and_reported(tmp_path):
    path = tmp_path / "evil.tar"
    raw_tar(path, {"../../escape.png": png(0), "/abs/root.png": png(1), "a/./b.png": png(2), "ok.png": png(3),
                   "sub/fine.png": png(4)})
    skipped = []
    samples = list(read_shard(str(path), on_skip=lambda name, reason: skipped.append((name, reason))))
    assert [s["__key__"] for s in samples] == ["ok", "sub/fine"]
    assert [name for name, _ in skipped] == ["../../escape.png", "/abs/root.png", "a/./b.png"]
    assert all(reason == "unsafe member name" for _, reason in skipped)


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/../b", "", "tab\there"])
def test_the_writer_refuses_unsafe_keys(tmp_path, key):
    writer = ShardWriter(str(tmp_path / "out-%02d.tar"))
    with pytest.raises(ShardError, match="unsafe sample key"):
        writer.write(key, {"png": png(0)})
    writer.write("fine/key", {"png": png(0)})
    assert safe_name("fine/key.png") and not safe_name(key)


def test_oversized_members_are_skipped_unread_and_counted(tmp_path):
    path = tmp_path / "big.tar"
    raw_tar(path, {"small.png": png(0), "large.png": png(1, side=200), "after.png": png(2)})
    config = DataConfig(urls=str(path), mode="whole", resampled=False, shuffle_buffer=0,
                        patches=PatchConfig(encoder_size=16), decode=DecodeConfig(max_file_mb=20_000 / 2**20))
    dataset = ShardDataset(config)
    keys = [sample["key"] for sample in dataset]
    assert keys == ["small", "after"] and dataset.stats["skipped"] == 1
    assert "over the 20000-byte cap" in dataset.skipped[0][2]
    with pytest.raises(ValueError, match="max_file_mb"):
        DecodeConfig(max_file_mb=0)


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write a sparse member")
def test_a_sparse_two_gigabyte_member_costs_no_memory(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(png(0))
    with open(tmp_path / "src" / "b.png", "wb") as f:
        f.truncate(2 << 30)  # a hole: no disk, but 2 GB when read
    (tmp_path / "src" / "c.png").write_bytes(png(2))
    shard = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(shard), "-C", str(tmp_path / "src"), "a.png", "b.png", "c.png"],
                   check=True, timeout=120)
    assert shard.stat().st_size < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    skipped = []
    keys = [s["__key__"] for s in read_shard(str(shard), on_skip=lambda *a: skipped.append(a))]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert keys == ["a", "c"] and len(skipped) == 1 and grown_mb < 256
