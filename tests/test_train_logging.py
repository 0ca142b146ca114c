"""What a run reports: plain loss lines without a TTY, curves.png, loud notice of missing trackers, images."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
from PIL import Image

from infd.training.accel import available_trackers
from infd.training.run import TrainingRun
from infd.training.run_dir import write_curves

from train_testing import shards, tiny_config  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_without_a_tty_logs_plain_lines_and_draws_its_curves(shards, tmp_path):  # noqa: F811
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(shards, tmp_path / "run", max_steps=6, log_every=2,
                                                 checkpoint_every=3, deterministic=False, exact_resume=False,
                                                 trackers=["tensorboard", "wandb"])))
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "ae", "--config", str(config)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "stage 1 step" in line]
    assert [line.split("stage 1 step ")[1].split()[0] for line in lines] == ["2/6", "4/6", "6/6"], proc.stderr
    assert all("loss=" in line and "steps_per_s=" in line for line in lines)
    assert "\r" not in proc.stderr  # no progress bar written into the log
    for name in ("tensorboard", "wandb"):
        assert (f"{name} is not installed" in proc.stderr) == (name not in available_trackers([name]))
    with Image.open(tmp_path / "run" / "curves.png") as image:
        assert image.size == (720, 450) and np.asarray(image.convert("L")).std() > 10


def test_unknown_tracker_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "ae", "--config",
                           "configs/train/ae_cpu_v4.yaml", "--set", "trackers=[tensorbord]", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "trackers must be among" in proc.stderr, proc.stderr


def test_curves_average_long_logs_into_bins(tmp_path):
    assert write_curves(tmp_path) is None  # no log yet
    with (tmp_path / "log.jsonl").open("w") as f:
        for step in range(1, 1001):
            f.write(f'{{"step": {step}, "time": 0, "loss": {1 / step}, "steps_per_s": 3.0, "reg": 1e4}}\n')
    path = write_curves(tmp_path)
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert path.name == "curves.png" and pixels.std() > 10


class FakeTracker:
    def __init__(self, name):
        self.name, self.calls = name, []

    def log_images(self, values, step, **kwargs):
        self.calls.append((values, step, kwargs))


def test_grids_go_to_the_trackers_that_show_images(tmp_path):
    grid = tmp_path / "grid.png"
    Image.fromarray(np.full((6, 10, 3), 200, np.uint8)).save(grid)
    trackers = [FakeTracker("tensorboard"), FakeTracker("wandb")]
    run = SimpleNamespace(acc=SimpleNamespace(is_main_process=True, trackers=trackers), step=7)
    TrainingRun.log_image(run, "samples", grid)
    (tb_values, tb_step, tb_kwargs), = trackers[0].calls
    assert tb_step == 7 and tb_values["samples"].shape == (1, 6, 10, 3) and tb_kwargs == {"dataformats": "NHWC"}
    (wb_values, wb_step, _), = trackers[1].calls
    assert wb_step == 7 and wb_values["samples"][0].shape == (6, 10, 3)
    other = SimpleNamespace(acc=SimpleNamespace(is_main_process=False, trackers=trackers), step=8)
    TrainingRun.log_image(other, "samples", grid)
    assert len(trackers[0].calls) == 1  # only the main process logs
