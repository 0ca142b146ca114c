"""tools/bench_train.py on a tiny config: every part of the step is timed, the GAN and LPIPS parts only
when they run, and the ratio line compares the last config with the first. The figures themselves are
benchmark output (tools/bench_train.py prints them), not asserted here."""
import sys
from pathlib import Path

import torch
import yaml

from process_testing import run_group
from train_testing import shards, tiny_config  # noqa: F401 - shards is a fixture
from infd.config import from_dict
from infd.training.ae_bench import PARTS, compare
from infd.training.ae_loop import AETrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_bench_train_prints_the_split_and_the_ratio(shards, tmp_path):
    paths = []
    for name, batch in (("base", 2), ("big", 4)):
        config = tiny_config(shards, tmp_path / name)
        config["data"]["batch_size"] = batch
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(config))
    result = run_group([sys.executable, str(ROOT / "tools/bench_train.py"), "--config", *map(str, paths),
                        "--steps", "2", "--warmup", "1", "--threads", "1", "--gan"], cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    for part in PARTS:
        rows = [line for line in lines if line.split()[:1] == [part]]
        assert len(rows) == 2 and all(float(row.split()[1]) >= 0 for row in rows), part
    assert sum("samples/s" in line for line in lines) == 2 and "batch 4:" in lines[-2]
    name, value = lines[-1].split("=")
    assert name == "samples_per_s_ratio" and float(value) > 0


def test_bench_train_refuses_a_missing_config_in_one_line(tmp_path):
    result = run_group([sys.executable, str(ROOT / "tools/bench_train.py"), "--config", str(tmp_path / "no.yaml")],
                       cwd=ROOT, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_parts_run_only_when_the_recipe_has_them(shards, tmp_path):
    """No discriminator time before the GAN starts; the step of the loss terms decides whether LPIPS runs."""
    from infd.losses import LPIPS

    config = from_dict(AETrainConfig, tiny_config(shards, tmp_path / "r", loss={
        "perceptual_weight": 1.0, "perceptual_start_step": 5, "gan_weight": 0.5, "gan_start_step": 100,
        "discriminator": {"base_channels": 8, "num_layers": 1}}))
    calls = []
    lpips = LPIPS()
    lpips.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(0)
    warm = compare({"a": config}, torch.device("cpu"), steps=2, warmup=0, step=0, lpips=lpips)["a"]
    assert calls == [] and warm.seconds["discriminator"] == []
    full = compare({"a": config}, torch.device("cpu"), steps=2, warmup=0, gan=True, lpips=lpips)["a"]
    assert len(calls) == 2 and len(full.seconds["discriminator"]) == 2 and full.median("discriminator") > 0
    assert all(len(full.seconds[p]) == 2 for p in PARTS) and full.samples_per_s > 0
