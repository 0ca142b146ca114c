"""tools/train.py under torchrun with 2 CPU processes, both stages, validation images on; a failing rank
ends the whole run."""
import os
import sys
import time

import pytest
import yaml

from dm_testing import make_cache
from process_testing import run_group
from test_dm_train import tiny_dm_config
from tool_testing import ROOT
from train_testing import shards, tiny_config  # noqa: F401 - the fixture

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "INFD_DIST_TIMEOUT_S": "60"}


def launch(config: dict, stage: str, tmp_path, timeout: float = 300):
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(config))
    # --standalone: the rendezvous takes a free port; the group is killed if the run outlives the timeout.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tools" / "train.py"), stage, "--config", str(path), "--no-progress"]
    return run_group(cmd, cwd=tmp_path, env=ENV, timeout=timeout)


def val_config(shards):  # noqa: F811
    return {"urls": shards, "mode": "whole", "resampled": False, "patches": {"encoder_size": 32}}


@pytest.mark.slow
def test_two_processes_train_stage_1_with_reconstruction_grids(shards, tmp_path):  # noqa: F811
    config = tiny_config(shards, tmp_path / "ae", max_steps=4, checkpoint_every=2, image_every=2,
                         num_val_images=2, val_sizes=[32, 64], val_data=val_config(shards), deterministic=False,
                         exact_resume=False)
    proc = launch(config, "ae", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage 1: 2 process(es) (MULTI_CPU)" in proc.stderr and "global batch 4 (2 per process)" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "ae" / "images").iterdir()) == ["recon-00000002.png", "recon-00000004.png"]
    assert "stopped at step 4" in proc.stdout


@pytest.mark.slow
def test_two_processes_train_stage_2_with_sample_grids(tmp_path):
    cache = make_cache(tmp_path / "cache")
    config = tiny_dm_config(cache, tmp_path / "dm", max_steps=4, sample_every=2, deterministic=False,
                            exact_resume=False)
    proc = launch(config, "dm", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage 2: 2 process(es) (MULTI_CPU)" in proc.stderr and "global batch 8 (4 per process)" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "dm" / "images").iterdir()) == ["samples-00000002.png",
                                                                             "samples-00000004.png"]
    assert (tmp_path / "dm" / "bundle.safetensors").is_file()


@pytest.mark.slow
def test_a_failing_rank_ends_every_rank(shards, tmp_path):  # noqa: F811
    """Only rank 0 takes the run directory's lock: with another run holding it, rank 0 fails with one line
    while rank 1 has started; the launcher must end rank 1 too."""
    from infd.training.run_dir import RunDirLock

    config = tiny_config(shards, tmp_path / "ae", max_steps=100000, deterministic=False, exact_resume=False)
    lock = RunDirLock(tmp_path / "ae").acquire()
    try:
        start = time.monotonic()
        proc = launch(config, "ae", tmp_path, timeout=240)
    finally:
        lock.release()
    assert proc.returncode != 0 and time.monotonic() - start < 200, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "is in use by another training process" in errors[0], proc.stderr[-3000:]
