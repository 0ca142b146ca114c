"""Stage-1 training on tiny models: the loss goes down, kill -9 + resume is bit-exact, and two CPU
ranks keep identical weights."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from process_testing import run_group
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture
from infd.data import make_loader
from infd.config import from_dict
from infd.models.autoencoder import NeuralFieldAutoencoder
from infd.training.ae_loop import AETrainConfig, crop_context, train_autoencoder
from infd.training.run_dir import read_log
from infd.training.state import latest_state, load_state

ROOT = Path(__file__).resolve().parents[1]


def _fixed_batch_l1(model, batch) -> float:
    with torch.no_grad():
        phi = model.decode(model.encode(batch["inp"]))
        rgb = crop_context(model.render(phi, batch["coord"], batch["cell"]), batch["gt"].shape[-2:])
        return (rgb - batch["gt"]).abs().mean().item()


def test_tiny_run_learns_and_writes_run_dir(shards, tmp_path):
    loss = {"perceptual_weight": 0.0, "gan_weight": 0.1, "gan_start_step": 40, "disc_start_step": 30,
            "reg_weight": 1e-6, "discriminator": {"base_channels": 8, "num_layers": 1}}
    config = from_dict(AETrainConfig, tiny_config(shards, tmp_path / "run", max_steps=60, image_every=60, loss=loss,
                                                  optimizer={"lr": 2e-3}, val_sizes=[16, 32], num_val_images=2))
    held_out = next(iter(make_loader(replace(config.data, batch_size=8, seed=123), rank=0, world_size=1)))
    torch.manual_seed(config.seed)
    before = _fixed_batch_l1(NeuralFieldAutoencoder(config.model).eval(), held_out)
    result = train_autoencoder(config, progress=False)
    after = _fixed_batch_l1(result.model.eval(), held_out)
    assert after < 0.8 * before, (before, after)  # an untrained or broken loop stays near 1.0x
    rows = read_log(result.run_dir)
    assert [r["step"] for r in rows] == list(range(1, 61)) and all(np.isfinite(r["loss"]) for r in rows)
    assert any(r["g_adv"] != 0 for r in rows[40:]) and all(r["g_adv"] == 0 for r in rows[:40])  # GAN from step 40
    assert [r["step"] for r in rows if "d_loss" in r] == list(range(31, 61))  # the discriminator from step 30
    assert (result.run_dir / "config.yaml").exists() and (result.run_dir / "images" / "recon-00000060.png").exists()
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["max_steps"] == 60
    assert load_state(latest_state(result.run_dir))["step"] == 60


def test_max_minutes_stops_with_a_checkpoint(shards, tmp_path, monkeypatch):
    import types

    import infd.training.run as run

    calls = []  # a clock that advances 30 s per reading: the deadline (72 s later) passes after 2 steps
    clock = types.SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: 30.0 * (calls.append(1) or len(calls)))
    monkeypatch.setattr(run, "time", clock)
    config = from_dict(AETrainConfig, tiny_config(shards, tmp_path / "run", max_steps=100, max_minutes=1.2))
    assert train_autoencoder(config, progress=False).step == 2
    assert load_state(latest_state(tmp_path / "run"))["step"] == 2  # checkpoint_every is 4: saved on the way out
    assert (tmp_path / "run" / "checkpoints" / "model-latest.safetensors").exists()
    monkeypatch.undo()
    assert train_autoencoder(replace(config, max_steps=3), progress=False).step == 3  # a rerun continues


def _run_training(config_path: Path, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "tools" / "train.py"), "ae", "--config", str(config_path),
                             "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_kill_9_then_resume_is_bit_exact(shards, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    paths = {}
    for name in ("straight", "killed"):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(tiny_config(shards, tmp_path / name)))
    assert _run_training(paths["straight"], env).wait(timeout=300) == 0

    proc = _run_training(paths["killed"], env)
    state_8 = tmp_path / "killed" / "checkpoints" / "state-00000008.pt"
    deadline = time.time() + 240
    while not state_8.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state_8.exists()
    assert _run_training(paths["killed"], env).wait(timeout=300) == 0  # resumes from the latest state

    a = load_state(tmp_path / "straight" / "checkpoints" / "state-00000012.pt")
    b = load_state(tmp_path / "killed" / "checkpoints" / "state-00000012.pt")
    for part in ("model", "discriminator"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"


def test_sigterm_to_the_process_group_saves_a_checkpoint(shards, tmp_path):
    config = tiny_config(shards, tmp_path / "run", max_steps=10000, checkpoint_every=10000)
    config["data"]["num_workers"] = 1  # the worker gets the signal too
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "train.py"), "ae", "--config", str(path),
                             "--no-progress"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while len(read_log(tmp_path / "run")) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, output[-2000:]
    state = load_state(latest_state(tmp_path / "run"))
    assert 3 <= state["step"] < 10000 and state["step"] >= read_log(tmp_path / "run")[-1]["step"]


@pytest.mark.slow
def test_two_cpu_ranks_keep_identical_weights(shards, tmp_path):
    script = tmp_path / "ddp.py"
    out = tmp_path / "weights"
    config = tiny_config(shards, tmp_path / "ddp", max_steps=4, checkpoint_every=4)
    script.write_text(f"""
import os, torch
from infd.config import from_dict
from infd.models.autoencoder import NeuralFieldAutoencoder
from infd.training.ae_loop import AETrainConfig, train_autoencoder
result = train_autoencoder(from_dict(AETrainConfig, {config!r}), progress=False)
assert result.num_processes == 2 and result.step == 4
torch.save(result.model.state_dict(), {str(out)!r} + os.environ["RANK"] + ".pt")
""")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", INFD_DIST_TIMEOUT_S="120")
    # --standalone: the rendezvous takes a free port; a rank stuck in a collective fails after 120 s (the
    # process-group timeout) and the whole group is killed if the run still hangs.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = run_group(cmd, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    w0 = torch.load(str(out) + "0.pt", weights_only=True)
    w1 = torch.load(str(out) + "1.pt", weights_only=True)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    torch.manual_seed(0)  # the run's initial weights (seed 0): training must have changed them
    initial = NeuralFieldAutoencoder(from_dict(AETrainConfig, config).model).state_dict()
    assert not torch.equal(w0["renderer.conv_out.weight"], initial["renderer.conv_out.weight"])


def test_init_from_committed_weights_continues_the_step_and_refuses_another_architecture(shards, tmp_path):
    first = train_autoencoder(from_dict(AETrainConfig, tiny_config(shards, tmp_path / "a", max_steps=4)),
                              progress=False)
    weights = tmp_path / "a" / "checkpoints" / "model-latest.safetensors"
    config = from_dict(AETrainConfig, tiny_config(shards, tmp_path / "b", max_steps=6))
    second = train_autoencoder(config, progress=False, init_from=str(weights))
    assert second.step == 6 and load_state(latest_state(tmp_path / "b"))["step"] == 6
    rows = read_log(tmp_path / "b")
    assert [r["step"] for r in rows] == [5, 6]  # continued from the file's step 4, with fresh optimisers
    loaded = train_autoencoder(from_dict(AETrainConfig, tiny_config(shards, tmp_path / "d", max_steps=4)),
                               progress=False, init_from=str(weights))  # already at max_steps: no update
    for key, value in first.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key

    other = tiny_config(shards, tmp_path / "c", max_steps=2)
    other["model"]["channels"] = 16
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(other))
    out = run_group([sys.executable, str(ROOT / "tools" / "train.py"), "ae", "--config", str(path), "--init-from",
                     str(weights), "--no-progress"], cwd=ROOT, timeout=240)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error:"), out.stderr
    assert "mis-shaped" in out.stderr or "missing keys" in out.stderr or "unexpected" in out.stderr


def test_gan_min_scale_above_every_patch_trains_without_a_discriminator_step(shards, tmp_path):
    # patches here are magnified at most 64 / 32 = 2x: at gan_min_scale 3 no patch reaches the discriminator
    loss = {"perceptual_weight": 0.0, "gan_weight": 0.5, "gan_start_step": 3, "disc_start_step": 0,
            "gan_min_scale": 3.0, "reg_weight": 1e-6, "discriminator": {"base_channels": 8, "num_layers": 1}}
    config = from_dict(AETrainConfig, tiny_config(shards, tmp_path / "run", max_steps=6, loss=loss))
    result = train_autoencoder(config, progress=False)
    rows = read_log(result.run_dir)
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert not any("d_loss" in r for r in rows) and all(r["g_adv"] == 0 for r in rows)


class _Ranks:
    """An accelerator stand-in with ``num_processes`` ranks, of which ``others`` (beside this one) have rows."""

    def __init__(self, num_processes: int, others: int):
        self.num_processes, self.others, self.device = num_processes, others, "cpu"

    def reduce(self, tensor, reduction):  # "sum": the has-patches flag; "mean": this rank's gradients kept
        return tensor + self.others if reduction == "sum" else tensor

    def backward(self, loss):
        loss.backward()


def test_discriminator_step_skips_only_when_no_rank_has_a_patch():
    from infd.training.ae_loop import discriminator_step

    disc = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(disc.parameters(), lr=1.0)
    before, bias = disc.weight.detach().clone(), disc.bias.detach().clone()
    none = torch.zeros(())  # what discriminator_loss returns when gan_min_scale leaves no patch
    assert not discriminator_step(none, disc, opt, _Ranks(1, 0)) and disc.weight.grad is None
    assert not discriminator_step(none, disc, opt, _Ranks(2, 0))
    # another rank has patches: this one takes part in the step with zero gradients (same collectives)
    assert discriminator_step(none, disc, opt, _Ranks(2, 1))
    assert torch.equal(disc.weight.grad, torch.zeros_like(disc.weight)) and torch.equal(disc.weight, before)
    assert torch.equal(disc.bias.grad, torch.zeros_like(disc.bias)) and torch.equal(disc.bias, bias)
    assert discriminator_step(disc(torch.ones(2, 3)).mean(), disc, opt, _Ranks(1, 0))
    assert not torch.equal(disc.weight, before)
