"""tools/train.py: --dry-run prints the resolved config; bad configs are one line and exit code 2."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_dry_run_prints_the_resolved_paper_config():
    proc = run("ae", "--config", "configs/train/ae_ffhq.yaml", "--dry-run", "--set", "max_steps=7")
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert config["max_steps"] == 7 and config["model"]["channel_mult"] == [1, 2, 4]
    assert config["optimizer"]["lr"] == 3.6e-5 and config["optimizer"]["betas"] == [0.5, 0.9]
    assert config["loss"]["gan_weight"] == 0.75 and config["data"]["patches"]["max_size"] == 1024


def test_every_set_applies_whether_repeated_or_listed():
    proc = run("ae", "--config", "configs/train/ae_cpu.yaml", "--dry-run", "--set", "max_steps=7",
               "--set", "model.renderer.args.lookup=bilinear", "log_every=3")
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert config["max_steps"] == 7 and config["log_every"] == 3
    assert config["model"]["renderer"]["args"]["lookup"] == "bilinear"


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {chanels: 3}\n")
    for args in (["--config", str(bad)], ["--config", str(tmp_path / "missing.yaml")],
                 ["--config", "configs/train/ae_cpu.yaml", "--set", "max_step=3"],
                 ["--config", "configs/train/ae_cpu.yaml", "--set", "max_steps=0"]):
        proc = run("ae", *args)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "model.chanels" in run("ae", "--config", str(bad)).stderr
