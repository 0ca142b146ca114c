"""The streaming pipeline: bad samples never stop it, splitting covers every sample once, seeds
reproduce, batches meet the renderer contract."""
import io
import itertools
import logging
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from infd.data.pipeline import DataConfig, DataError, ShardDataset, collate_samples, expand_urls, make_dataset, make_loader
from infd.data.patches import PatchConfig
from infd.data.shards import ShardWriter
from torch.utils.data import DataLoader

TINY = PatchConfig(encoder_size=8, patch_size=8, max_size=16)


def encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def photo(seed: int, size=(20, 14)) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def huge_header_png() -> bytes:
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def odd_samples() -> dict:
    """Every kind of bad or unusual input, keyed by what it is: (ext, bytes, decodes?)."""
    jpeg = encode(photo(1, (48, 40)), "JPEG")
    rgba = np.random.RandomState(2).randint(0, 256, (14, 20, 4), dtype=np.uint8)
    return {
        "truncated-jpeg": ("jpg", jpeg[: len(jpeg) // 2], False),
        "zero-bytes": ("png", b"", False),
        "text-as-png": ("png", b"hello, I am text\n", False),
        "header-100000x100000": ("png", huge_header_png(), False),
        "one-pixel": ("png", encode(Image.new("RGB", (1, 1), (9, 99, 199))), True),
        "grey-16bit": ("png", encode(Image.fromarray(np.arange(280, dtype=np.uint16).reshape(14, 20) * 200)), True),
        "cmyk-jpeg": ("jpg", encode(Image.new("CMYK", (20, 14), (0, 255, 255, 0)), "JPEG"), True),
        "rgba-png": ("png", encode(Image.fromarray(rgba, "RGBA")), True),
    }


def write(pattern: str, samples, max_count: int) -> list[str]:
    writer = ShardWriter(pattern, max_count=max_count)
    for key, ext, data in samples:
        writer.write(key, {ext: data})
    return writer.close()


@pytest.fixture
def clean_shards(tmp_path):
    """8 shards of 5 good images each: keys good000..good039."""
    samples = [(f"good{i:03d}", "png", encode(photo(i))) for i in range(40)]
    return write(str(tmp_path / "clean-%02d.tar"), samples, max_count=5)


def config(urls, **kw) -> DataConfig:
    base = dict(urls=urls, resampled=False, shuffle_buffer=4, num_workers=0, batch_size=4, patches=TINY)
    base.update(kw)
    return DataConfig(**base)


def keys_of(dataset) -> list[str]:
    return [sample["key"] for sample in dataset]


def test_bad_samples_are_skipped_and_counted(tmp_path, caplog):
    odd = odd_samples()
    samples = [(f"good{i}", "jpg", encode(photo(i), "JPEG")) for i in range(6)]
    samples += [(key, ext, data) for key, (ext, data, _) in odd.items()]
    samples.append(("json-only", "json", b"{}"))
    urls = write(str(tmp_path / "mixed-%02d.tar"), samples, max_count=5)
    dataset = ShardDataset(config(urls))
    with caplog.at_level(logging.WARNING, logger="infd.data"):
        delivered = list(dataset)
    expected = {f"good{i}" for i in range(6)} | {k for k, (_, _, ok) in odd.items() if ok}
    assert sorted(s["key"] for s in delivered) == sorted(expected)
    bad = {k for k, (_, _, ok) in odd.items() if not ok} | {"json-only"}
    assert {key for _, key, _ in dataset.skipped} == bad
    assert dataset.stats["skipped"] == len(bad) and dataset.stats["samples"] == len(expected)
    assert sum("skipped" in record.message for record in caplog.records) == len(bad)
    for sample in delivered:
        assert sample["gt"].shape == (3, 8, 8) and torch.isfinite(sample["gt"]).all()
    # the 1x1 photo is skipped instead of upsampled when asked
    strict = ShardDataset(config(urls, patches=PatchConfig(encoder_size=8, patch_size=8, small_images="skip")))
    assert "one-pixel" not in keys_of(strict) and strict.stats["skipped"] == len(bad) + 1


def test_every_sample_once_per_epoch_with_two_nodes_two_workers(clean_shards):
    for epoch in range(2):
        seen = []
        for rank in range(2):
            dataset = make_dataset(config(clean_shards, num_workers=2), rank=rank, world_size=2)
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate_samples)
            seen += [key for batch in loader for key in batch["key"]]
        assert sorted(seen) == [f"good{i:03d}" for i in range(40)]  # all, none twice


def test_shard_split_is_a_partition():
    dataset = ShardDataset(config([f"s{i}.tar" for i in range(11)]), rank=1, world_size=3)
    slots = [list(dataset.shard_urls(worker, 2)) for worker in range(2)]
    others = [list(ShardDataset(config([f"s{i}.tar" for i in range(11)]), rank=r, world_size=3).shard_urls(w, 2))
              for r in (0, 2) for w in range(2)]
    everything = sorted(u for part in slots + others for u in part)
    assert everything == sorted(f"s{i}.tar" for i in range(11))


def test_fixed_seed_reproduces_the_stream(clean_shards):
    def first(seed, n=12):
        dataset = ShardDataset(config(clean_shards, resampled=True, seed=seed,
                                      patches=PatchConfig(encoder_size=8, patch_size=8, max_size=14, flip=True)))
        return list(itertools.islice(dataset, n))
    a, b, c = first(0), first(0), first(1)
    assert [s["key"] for s in a] == [s["key"] for s in b]
    for x, y in zip(a, b):
        assert x["size"] == y["size"] and torch.equal(x["gt"], y["gt"]) and torch.equal(x["coord"], y["coord"])
    assert [s["key"] for s in a] != [s["key"] for s in c]


def test_epochs_reshuffle_and_resampled_mode_never_ends(clean_shards):
    dataset = ShardDataset(config(clean_shards))
    first = keys_of(dataset)
    dataset.set_epoch(1)
    second = keys_of(dataset)
    assert sorted(first) == sorted(second) and first != second
    endless = ShardDataset(config(clean_shards, resampled=True))
    assert len(list(itertools.islice(endless, 100))) == 100  # more than the 40 images


def test_unreadable_shards_are_skipped(tmp_path, clean_shards):
    broken = tmp_path / "broken.tar"
    broken.write_bytes(open(clean_shards[0], "rb").read()[:700])  # cut inside the first member
    urls = [clean_shards[1], str(tmp_path / "missing.tar"), str(broken), clean_shards[2]]
    dataset = ShardDataset(config(urls, shard_shuffle=False))
    keys = keys_of(dataset)
    assert sorted(keys) == [f"good{i:03d}" for i in range(5, 15)]
    assert dataset.stats["shard_errors"] == 2


def test_only_failures_raise_data_error(tmp_path):
    urls = write(str(tmp_path / "bad-%02d.tar"), [(f"bad{i}", "png", b"nope") for i in range(3)], max_count=3)
    dataset = ShardDataset(config(urls, resampled=True, max_failures=20))
    with pytest.raises(DataError, match="20 consecutive"):
        next(iter(dataset))


def test_pipe_urls_and_brace_patterns(clean_shards):
    folder = clean_shards[0].rsplit("/", 1)[0]
    pattern = f"{folder}/clean-{{00..01}}.tar"
    assert expand_urls(pattern) == clean_shards[:2]
    assert expand_urls([pattern, clean_shards[2]]) == clean_shards[:3]
    piped = ShardDataset(config(f"pipe:cat {clean_shards[3]}"))
    assert sorted(keys_of(piped)) == [f"good{i:03d}" for i in range(15, 20)]


def test_loader_batches_meet_the_renderer_contract(clean_shards):
    loader = make_loader(config(clean_shards, resampled=True), rank=0, world_size=1)
    batch = next(iter(loader))
    assert batch["inp"].shape == (4, 3, 8, 8) and batch["gt"].shape == (4, 3, 8, 8)
    assert batch["coord"].shape == (4, 8, 8, 2) and batch["cell"].shape == (4, 2)
    assert batch["size"].shape == (4,) and len(batch["key"]) == 4
    torch.testing.assert_close(batch["cell"], 2 / batch["size"].float()[:, None].expand(4, 2))
    whole = make_loader(config(clean_shards, mode="whole",
                               patches=PatchConfig(encoder_size=8, patch_size=8, whole_size=12)), 0, 1)
    batch = next(iter(whole))
    assert batch["inp"].shape == (4, 3, 8, 8) and batch["gt"].shape == (4, 3, 12, 12)
    native = make_loader(config(clean_shards, mode="whole", patches=PatchConfig(encoder_size=8, patch_size=8)), 0, 1)
    assert next(iter(native))["gt"].shape == (4, 3, 14, 14)


def test_config_errors(tmp_path):
    with pytest.raises(Exception, match="urls is empty"):
        ShardDataset(DataConfig())
    with pytest.raises(ValueError, match="rank"):
        ShardDataset(config("a.tar"), rank=2, world_size=2)


def test_config_loads_from_dicts_and_yaml():
    from pathlib import Path

    from infd.config import ConfigError, from_dict, load_config

    loaded = load_config(DataConfig, Path(__file__).resolve().parents[1] / "configs" / "data" / "photos.yaml")
    assert loaded.patches.max_size == 1024 and loaded.resampled and len(expand_urls(loaded.urls)) == 4
    config = from_dict(DataConfig, {"urls": ["a.tar"], "patches": {"square": "pad", "max_size": None}})
    assert config.patches.square == "pad" and config.patches.max_size is None
    with pytest.raises(ConfigError, match="patches.sqare"):
        from_dict(DataConfig, {"patches": {"sqare": "pad"}})
    with pytest.raises(ConfigError, match="decode.background"):
        from_dict(DataConfig, {"decode": {"background": "grey"}})


def test_bench_tool_prints_the_rate(clean_shards):
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "bench_data.py"
    # A subprocess: the tool sets torch's thread count for its process, as a DataLoader worker has it.
    proc = subprocess.run([sys.executable, str(path), "--urls", " ".join(clean_shards[:2]).replace(" ", "::"),
                           "--patches", "6", "--warmup", "1", "--patch-size", "8", "--encoder-size", "8",
                           "--max-size", "16", "--quiet"], capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert "draft fast path" in "\n".join(lines)
    assert lines[-1].startswith("patches_per_s_per_worker=") and float(lines[-1].split("=")[1]) > 0
