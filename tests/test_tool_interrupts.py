"""Interrupted and failing writers leave no partial file (issue 16, items 12 (shards), 16, 18, 20): Ctrl-C and
SIGTERM are one line and exit 130, ENOSPC is one line; no ``*.tar.tmp`` stays behind, an interrupted latent
cache has no ``stats.json`` (its completion mark), and a training run removes the temp files a killed one left."""
import errno
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from infd.cli import run_tool
from infd.models.autoencoder import NeuralFieldAutoencoder

from dm_testing import tiny_autoencoder, write_photo_shards
from process_testing import kill_group
from tool_testing import ROOT, load_tool
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture


def photo_folder(folder, count):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"p{i:04d}.png")
    return folder


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_run_tool_turns_an_unhandled_ctrl_c_into_one_line_and_130(capsys):
    def main():  # e.g. Ctrl-C while a tool imports torch, before its own handlers exist
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        run_tool(main)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 130 and len(err) == 1 and err[0].endswith("interrupted")


def test_make_shards_interrupted_leaves_no_partial_shard(tmp_path, monkeypatch, capsys):
    tool = load_tool("make_shards")
    src = photo_folder(tmp_path / "src", 6)
    calls = []
    real = tarfile.TarFile.addfile

    def addfile(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # the first member of the second shard (two members, image and json, per photo)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "addfile", addfile)
    assert tool.main([str(src), str(tmp_path / "out" / "s-%03d.tar"), "--max-count", "2", "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0] and "incomplete set" in err[0]
    assert leftovers(tmp_path) == [] and [p.name for p in (tmp_path / "out").iterdir()] == ["s-000.tar"]


@pytest.mark.parametrize("where", ["addfile", "close"])
def test_make_shards_on_a_full_disk_is_one_line_and_leaves_no_partial_shard(tmp_path, monkeypatch, capsys, where):
    tool = load_tool("make_shards")
    src = photo_folder(tmp_path / "src", 3)
    real = getattr(tarfile.TarFile, where)

    def full(self, *args, **kwargs):
        if where == "close":
            real(self, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, where, full)
    assert tool.main([str(src), str(tmp_path / "out" / "s-%03d.tar"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    assert leftovers(tmp_path) == [] and not any((tmp_path / "out").glob("*.tar"))


def test_make_shards_sigterm_exits_130_without_temp_files(tmp_path):
    src = photo_folder(tmp_path / "src", 400)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "make_shards.py"), str(src), str(out / "s-%03d.tar"),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the shard is being written: its temp file exists
        assert proc.poll() is None, "make_shards finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 130 and err.strip().splitlines()[-1].endswith("run again to rebuild it"), err
    assert "Traceback" not in err and leftovers(tmp_path) == []


@pytest.fixture
def photos_and_model(tmp_path):
    images = write_photo_shards(tmp_path / "images", 4, per_shard=4)
    tiny_autoencoder(tmp_path / "ae.safetensors")
    return images, tmp_path / "ae.safetensors"


def test_interrupted_latent_cache_has_no_stats_and_no_partial_shard(tmp_path, photos_and_model, monkeypatch, capsys):
    images, ae = photos_and_model
    out = tmp_path / "latents"
    out.mkdir()
    (out / "stats.json").write_text("{}")  # an older, complete cache: its stats must not describe the new shards
    calls = []
    real = NeuralFieldAutoencoder.encode

    def encode(self, inp):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, inp)

    monkeypatch.setattr(NeuralFieldAutoencoder, "encode", encode)
    args = ["--checkpoint", str(ae), "--data", images, "--out", str(out / "lat-%03d.tar"), "--batch-size", "1",
            "--max-count", "1", "--quiet"]
    assert load_tool("cache_latents").main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "incomplete (no stats.json)" in err[0]
    assert leftovers(tmp_path) == [] and not (out / "stats.json").exists()
    # latent 0 filled shard 0, latent 1 was in shard 1 (still a temp file: a shard is finished by the next
    # write or the close) when the third encode was interrupted
    assert sorted(p.name for p in out.iterdir()) == ["lat-000.tar"]


@pytest.mark.parametrize("device, message", [("tpu", "use auto, cpu, cuda or cuda:N"),
                                             ("cuda:0", "CUDA is not available")])
def test_latent_cache_device_errors_are_one_line(tmp_path, photos_and_model, capsys, device, message):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    images, ae = photos_and_model
    code = load_tool("cache_latents").main(["--checkpoint", str(ae), "--data", images, "--out",
                                            str(tmp_path / "lat" / "lat-%03d.tar"), "--device", device, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "lat").exists()


def test_a_run_removes_the_temp_files_a_killed_run_left(shards, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    stale = [run / "checkpoints" / ".state-00000004.pt.k2j4.tmp", run / ".config.yaml.x8q1.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = run / "checkpoints" / "notes.tmp"  # not a temp file of ours
    keep.write_text("mine")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(shards, run, max_steps=2)))
    assert load_tool("train").main(["ae", "--config", str(path), "--no-progress"]) == 0
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"
    assert leftovers(run) == ["notes.tmp"]
