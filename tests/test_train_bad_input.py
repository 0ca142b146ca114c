"""Bad training input is one line and exit 2, before anything is built or trained (issue 16, item 17):
settings no run can use pass neither --dry-run nor a real start, and a run directory that cannot be one
(a file, read-only) or holds a foreign ``state-*.pt`` is named, with the foreign file left as it was."""
import os

import pytest
import yaml

from tool_testing import ROOT, load_tool
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture

CONFIG = str(ROOT / "configs" / "train" / "ae_cpu_v3.yaml")

BAD_SETTINGS = {
    "max_steps=-1": "max_steps must be >= 1",
    "keep_checkpoints=-1": "keep_checkpoints must be >= 1",
    "keep_checkpoints=0": "keep_checkpoints must be >= 1",
    "optimizer.lr=.nan": "lr must be positive and finite",
    "disc_optimizer.lr=-1": "lr must be positive",
    "optimizer.betas=[1.5,0.9]": "betas must be two numbers in [0, 1)",
    "grad_clip=-1": "grad_clip must be >= 0",
    "model.channels=0": "channels must be >= 1",
    "model.z_channels=0": "z_channels must be >= 1",
    "model.channels=1000000": "wider than 8192",
    "model.norm_groups=5": "norm_groups 5 must divide",
}


@pytest.fixture(scope="module")
def train_tool():
    return load_tool("train")


@pytest.mark.parametrize("setting", BAD_SETTINGS)
def test_unusable_settings_fail_dry_run_in_one_line(train_tool, setting, tmp_path, capsys):
    code = train_tool.main(["ae", "--config", CONFIG, "--run-dir", str(tmp_path / "run"), "--set", setting,
                            "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and BAD_SETTINGS[setting] in err[0], err
    assert not (tmp_path / "run").exists()


def test_dm_settings_are_checked_too(train_tool, tmp_path, capsys):
    code = train_tool.main(["dm", "--config", str(ROOT / "configs" / "train" / "dm_cpu_unet.yaml"), "--run-dir",
                            str(tmp_path / "run"), "--set", "keep_checkpoints=0", "--dry-run"])
    assert code == 2 and "keep_checkpoints must be >= 1" in capsys.readouterr().err


def _error_line(capsys) -> str:
    """The one error line of a failed start (log lines may precede it; a traceback may not)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def _start(train_tool, shards, run_dir, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(shards, run_dir, max_steps=2)))
    return train_tool.main(["ae", "--config", str(path), "--no-progress"])


def test_a_file_where_the_run_directory_belongs(train_tool, shards, tmp_path, capsys):
    (tmp_path / "run").write_text("notes")
    assert _start(train_tool, shards, tmp_path / "run", tmp_path) == 2
    err = _error_line(capsys)
    assert err.startswith("error:") and "run" in err
    assert (tmp_path / "run").read_text() == "notes"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_directory(train_tool, shards, tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert _start(train_tool, shards, parent / "run", tmp_path) == 2
    finally:
        parent.chmod(0o755)
    assert "Permission denied" in _error_line(capsys)


@pytest.mark.parametrize("content", ["pickle", "tensors", "text"])
def test_a_foreign_state_file_is_named_and_kept(train_tool, shards, tmp_path, capsys, content):
    import pickle

    import torch

    state = tmp_path / "run" / "checkpoints" / "state-00000005.pt"
    state.parent.mkdir(parents=True)
    if content == "pickle":
        state.write_bytes(pickle.dumps({"a": {1, 2}}, protocol=4))
    elif content == "tensors":
        torch.save({"model": {"w": torch.zeros(2)}}, state)
    else:
        state.write_text("not a checkpoint")
    before = state.read_bytes()
    assert _start(train_tool, shards, tmp_path / "run", tmp_path) == 2
    err = _error_line(capsys)
    assert "is not a training state" in err and "state-00000005.pt" in err, err
    assert state.read_bytes() == before
