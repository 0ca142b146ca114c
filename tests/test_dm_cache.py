"""The latent cache: every image encoded once (and mirrored), equal to the encoder on stage 1's input,
with labels, skip counts and exact statistics; read back by the stage-2 loader."""
import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch

from infd.data.decode import DecodeConfig
from infd.data.latents import LATENT_EXT, LatentCacheError, LatentDataConfig, LatentStats, RunningMoments, \
    latent_from_bytes, load_stats, make_latent_loader
from infd.data.patches import PatchConfig, sample_whole
from infd.data.pipeline import expand_urls
from infd.data.shards import read_shard
from infd.checkpoint import file_sha256, save_model
from infd.config import from_dict
from infd.diffusion.config import build_backbone, load_diffusion_config

from dm_testing import CORRUPT_KEY, ROOT, photo_bytes, tiny_autoencoder, write_photo_shards
from tool_testing import load_tool


def read_cache(urls) -> dict[str, tuple[torch.Tensor, dict]]:
    """Every sample of the latent shards: key -> (z, json)."""
    out = {}
    for url in expand_urls(urls):
        for sample in read_shard(url):
            out[sample["__key__"]] = (latent_from_bytes(sample[LATENT_EXT]), json.loads(sample["json"]))
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """tools/cache_latents.py on 5 photos (labelled) and one corrupt file, with --flip and one worker."""
    root = tmp_path_factory.mktemp("cache")
    images = write_photo_shards(root / "images", 5, per_shard=3, corrupt=True)
    model = tiny_autoencoder(root / "ae.safetensors")
    main = load_tool("cache_latents").main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(["--checkpoint", str(root / "ae.safetensors"), "--data", images, "--out",
                   str(root / "latents" / "lat-%03d.tar"), "--flip", "--batch-size", "2", "--num-workers", "1",
                   "--max-count", "4", "--quiet"])
    assert rc == 0, err.getvalue()
    return {"root": root, "images": images, "model": model, "stdout": out.getvalue(),
            "latents": str(root / "latents" / "lat-{000..002}.tar")}


def test_cached_latents_equal_the_encoder_on_stage_1_inputs(cache):
    stored = read_cache(cache["latents"])
    keys = [f"{i:04d}" for i in range(5)]
    assert sorted(stored) == sorted(keys + [k + "_flip" for k in keys])  # the corrupt photo is not there
    patches = PatchConfig(encoder_size=32, whole_size=32)
    inp = torch.stack([sample_whole(photo_bytes(i), patches, DecodeConfig())["inp"] for i in range(5)])
    with torch.no_grad():
        z, z_flip = cache["model"].encode(inp), cache["model"].encode(inp.flip(-1))
    for i, key in enumerate(keys):
        latent, meta = stored[key]
        assert latent.shape == (3, 8, 8) and latent.dtype == torch.float32
        torch.testing.assert_close(latent, z[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(stored[key + "_flip"][0], z_flip[i], atol=1e-5, rtol=1e-5)
        assert meta == {"key": key, "shard": meta["shard"], "flip": False, "label": i % 3}
        assert meta["shard"].endswith(f"img-{0 if i < 2 else 1:02d}.tar")  # shard 0: 0000, 0001, the corrupt file
        assert stored[key + "_flip"][1]["flip"] is True
    assert not torch.allclose(stored["0000"][0], stored["0000_flip"][0])


def test_stats_match_the_stored_latents(cache):
    stats = load_stats(cache["root"] / "latents" / "stats.json")
    z = torch.stack([v[0] for v in read_cache(cache["latents"]).values()]).double()  # (10, 3, 8, 8)
    assert stats.latent_shape == (3, 8, 8) and stats.num_latents == 10 and stats.num_images == 5
    assert stats.num_skipped == 1 and stats.num_labelled == 10 and stats.flip
    assert stats.autoencoder_sha256 == file_sha256(cache["root"] / "ae.safetensors")
    torch.testing.assert_close(torch.tensor(stats.mean, dtype=torch.float64), z.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(stats.std, dtype=torch.float64), z.std(dim=(0, 2, 3), unbiased=False))
    assert stats.global_std == pytest.approx(z.std(unbiased=False).item(), rel=1e-9)
    assert stats.global_mean == pytest.approx(z.mean().item(), rel=1e-9)
    assert "skipped: 1" in cache["stdout"] and f"skipped {CORRUPT_KEY}" in cache["stdout"]


def test_running_moments_merge_uneven_batches_exactly():
    z = torch.randn(13, 4, 5, 6, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.1, 10.0]).view(1, 4, 1, 1) + 100
    moments = RunningMoments()
    for part in torch.split(z, [1, 5, 7]):
        moments.update(part)
    result = moments.result()
    torch.testing.assert_close(torch.tensor(result["mean"], dtype=torch.float64), z.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(result["std"], dtype=torch.float64), z.std(dim=(0, 2, 3), unbiased=False))


def test_shift_scale_per_channel_and_global():
    stats = LatentStats(latent_shape=(2, 4, 4), mean=(1.0, -2.0), std=(0.5, 4.0), global_mean=-0.5, global_std=3.0,
                        num_latents=1, num_images=1)
    assert stats.shift_scale("per_channel") == ((1.0, -2.0), (0.5, 4.0))
    assert stats.shift_scale("global") == ((0.0,), (3.0,))


def test_loader_streams_batches_with_labels(cache):
    config = from_dict(LatentDataConfig, {"urls": cache["latents"], "batch_size": 4, "shuffle_buffer": 0,
                                          "resampled": False})
    batches = list(make_latent_loader(config))
    z = torch.cat([b["z"] for b in batches])
    labels = torch.cat([b["label"] for b in batches])
    assert z.shape == (10, 3, 8, 8) and sorted(labels.tolist()) == sorted([0, 1, 2, 0, 1] * 2)
    endless = iter(make_latent_loader(from_dict(LatentDataConfig, {"urls": cache["latents"], "batch_size": 4})))
    assert all(next(endless)["z"].shape == (4, 3, 8, 8) for _ in range(6))  # resampled: more than one epoch


def test_unlabelled_images_get_no_label(tmp_path):
    images = write_photo_shards(tmp_path / "images", 2, per_shard=2, labels=False)
    from infd.data.latent_cache import cache_latents

    model = tiny_autoencoder(tmp_path / "ae.safetensors")
    summary = cache_latents(model.encode, images, str(tmp_path / "lat-%02d.tar"), encoder_size=32)
    assert summary.stats.num_labelled == 0 and summary.num_latents == 2
    assert all("label" not in meta for _, meta in read_cache(str(tmp_path / "lat-00.tar")).values())
    batch = next(iter(make_latent_loader(LatentDataConfig(urls=str(tmp_path / "lat-00.tar"), batch_size=2))))
    assert batch["label"].tolist() == [-1, -1]


def test_cli_errors_are_one_line(tmp_path, cache):
    ae = str(cache["root"] / "ae.safetensors")
    cases = {"image shard not found": ["--checkpoint", ae, "--data", str(tmp_path / "none-{0..1}.tar")],
             "checkpoint not found": ["--checkpoint", str(tmp_path / "missing.safetensors"), "--data", cache["images"]],
             "cannot read checkpoint": ["--checkpoint", cache["images"].replace("{00..01}", "00"), "--data", cache["images"]],
             "not an autoencoder": ["--checkpoint", str(tmp_path / "unet.safetensors"), "--data", cache["images"]],
             "use auto, cpu, cuda or cuda:N": ["--checkpoint", ae, "--data", cache["images"], "--device", "gpu"]}
    save_model(build_backbone(load_diffusion_config(ROOT / "configs" / "dm" / "unet_tiny.yaml")), tmp_path / "unet.safetensors")
    main = load_tool("cache_latents").main
    for message, args in cases.items():
        err = io.StringIO()
        with redirect_stderr(err):
            assert main([*args, "--out", str(tmp_path / "l-%02d.tar"), "--quiet"]) == 2
        assert err.getvalue().count("\n") == 1 and message in err.getvalue(), err.getvalue()
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "cache_latents.py"), "--checkpoint", ae, "--data",
                           cache["images"], "--out", str(tmp_path / "l.tar")], capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "%06d" in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("l*.tar"))  # nothing was written
    with pytest.raises(LatentCacheError, match="not found"):
        load_stats(tmp_path / "stats.json")
