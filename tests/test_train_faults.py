"""Every failure of a training run exits within seconds with one line and a non-zero code, its data
loader workers included (they ignore SIGTERM, so an exception used to leave the process hanging at exit)."""
import sys
from pathlib import Path

import pytest
import yaml

from process_testing import run_group_checked
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 90  # generous for a loaded 2-core machine; the hang this guards against never ends


def _config(shards, tmp_path, **changes) -> Path:
    config = tiny_config(shards, tmp_path / "run", max_steps=40, deterministic=False, exact_resume=False)
    config["data"]["num_workers"] = 1  # the faults must end worker processes too
    for key, value in changes.items():
        node = config
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(path: Path, cwd: Path):
    return run_group_checked([sys.executable, str(ROOT / "tools/train.py"), "ae", "--config", str(path),
                              "--no-progress"], timeout=240, cwd=cwd, env={"OMP_NUM_THREADS": "1", **_env()})


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


FAULTS = {
    "diverging loss": ({"optimizer.lr": 1e30, "max_nonfinite_steps": 2}, 1, "consecutive non-finite losses"),
    "no shard readable": ({"data.urls": "junk-{00..03}.tar", "data.max_failures": 3}, 1, "consecutive samples"),
}


@pytest.mark.parametrize("name", FAULTS)
def test_a_failing_run_exits_in_one_line_and_leaves_no_worker(shards, tmp_path, name):
    changes, code, message = FAULTS[name]
    for i in range(4):  # shards that exist but are not tar files
        (tmp_path / f"junk-{i:02d}.tar").write_bytes(b"not a tar archive " * 64)
    result, elapsed, left_behind = _train(_config(shards, tmp_path, **changes), tmp_path)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == code and last.startswith("error:") and message in last, result.stderr[-2000:]
    assert elapsed < BOUND_S and not left_behind


@pytest.mark.parametrize("key", ["data.urls", "val_data.urls"])
def test_missing_shards_are_a_one_line_error_before_training(shards, tmp_path, key):
    result, elapsed, left_behind = _train(_config(shards, tmp_path, image_every=2, **{key: "missing-{00..03}.tar"}),
                                          tmp_path)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and last == f"error: {key}: shard not found: missing-00.tar (and 3 more)", last
    assert not (tmp_path / "run" / "checkpoints").exists() and not left_behind


def test_a_failing_checkpoint_write_exits_in_one_line(shards, tmp_path):
    """An OSError while saving (a full disk, here a file where the checkpoint folder belongs) ends the run."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("not a folder")
    result, elapsed, left_behind = _train(_config(shards, tmp_path, checkpoint_every=2), tmp_path)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode in (1, 2) and last.startswith("error:"), result.stderr[-2000:]
    assert elapsed < BOUND_S and not left_behind
    assert (tmp_path / "run" / "checkpoints").read_text() == "not a folder"


def test_a_truncated_validation_shard_is_skipped_and_the_run_finishes(shards, tmp_path):
    bad = tmp_path / "val-00.tar"
    bad.write_bytes(Path(shards.replace("{00..01}", "00")).read_bytes()[:700])
    path = _config(shards, tmp_path, max_steps=4, image_every=2, **{"val_data.urls": str(bad)})
    result, elapsed, left_behind = _train(path, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped the rest of" in result.stderr and elapsed < BOUND_S and not left_behind
