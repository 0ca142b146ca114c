"""One run per run directory (a lock naming its holder), and a resumed run never silently drops a
changed config: it refuses with the differing keys, or applies them with --allow-config-change."""
import os
import sys
from pathlib import Path

import pytest
import yaml

from process_testing import run_group
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture
from infd.checkpoint import CheckpointError
from infd.config import from_dict
from infd.training.ae_loop import AETrainConfig, train_autoencoder
from infd.training.run_dir import RunDirBusy, RunDirLock, config_changes
from infd.training.state import latest_state, load_state

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_run_on_a_locked_directory_fails_in_one_line_naming_the_holder(shards, tmp_path):
    run_dir = tmp_path / "run"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(shards, run_dir, max_steps=2)))
    lock = RunDirLock(run_dir).acquire()  # stands in for a first tools/train.py still running
    try:
        result = run_group([sys.executable, str(ROOT / "tools/train.py"), "ae", "--config", str(path),
                            "--no-progress"], timeout=240, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: run directory")
        assert f"PID {os.getpid()}" in result.stderr and latest_state(run_dir) is None
        with pytest.raises(RunDirBusy):
            train_autoencoder(from_dict(AETrainConfig, tiny_config(shards, run_dir, max_steps=2)), progress=False)
    finally:
        lock.release()
    train_autoencoder(from_dict(AETrainConfig, tiny_config(shards, run_dir, max_steps=2)), progress=False)
    RunDirLock(run_dir).acquire().release()  # the finished run let go of it


def test_a_changed_lr_is_refused_or_really_applied(shards, tmp_path):
    run_dir = tmp_path / "run"
    train_autoencoder(from_dict(AETrainConfig, tiny_config(shards, run_dir, max_steps=4)), progress=False)
    changed = tiny_config(shards, run_dir, max_steps=8)
    changed["optimizer"] = {"lr": 1e-4}
    with pytest.raises(CheckpointError, match=r"optimizer.lr: 0.002 -> 0.0001.*--allow-config-change"):
        train_autoencoder(from_dict(AETrainConfig, changed), progress=False)
    assert load_state(latest_state(run_dir))["step"] == 4  # nothing ran
    train_autoencoder(from_dict(AETrainConfig, changed), progress=False, allow_config_change=True)
    state = load_state(latest_state(run_dir))
    assert state["step"] == 8 and state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(2e-3)  # unchanged in the config


def test_run_length_and_reporting_may_change_on_resume(shards, tmp_path):
    run_dir = tmp_path / "run"
    train_autoencoder(from_dict(AETrainConfig, tiny_config(shards, run_dir, max_steps=4)), progress=False)
    longer = tiny_config(shards, run_dir, max_steps=6, log_every=2, checkpoint_every=3, keep_checkpoints=1)
    assert train_autoencoder(from_dict(AETrainConfig, longer), progress=False).step == 6


def test_config_changes_lists_nested_keys_and_skips_the_free_ones():
    saved = {"max_steps": 1, "optimizer": {"lr": 1.0, "betas": [0.5, 0.9]}, "data": {"num_workers": 1, "seed": 0}}
    current = {"max_steps": 9, "optimizer": {"lr": 2.0, "betas": [0.5, 0.9]}, "data": {"num_workers": 4, "seed": 1},
               "extra": True}
    assert config_changes(saved, current) == [("data.seed", 0, 1), ("extra", None, True), ("optimizer.lr", 1.0, 2.0)]
