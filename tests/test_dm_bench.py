"""tools/bench_dm.py runs end to end on tiny models and prints its contract lines; the speedup holds its meaning."""
import dataclasses
import runpy
from pathlib import Path

import pytest

from infd.config import load_config
from infd.diffusion.config import load_diffusion_config
from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder
from infd.training.dm_bench import SamplerBench, StepBench, benchmark_training_step

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "bench_dm.py"


def test_bench_dm_tiny_run_prints_rates_and_speedup(capsys):
    main = runpy.run_path(str(TOOL))["main"]
    assert main(["--config", str(ROOT / "configs/dm/unet_tiny.yaml"), "--autoencoder-config",
                 str(ROOT / "configs/ae/tiny.yaml"), "--repeats", "2", "--sample-steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    samplers = [line for line in lines if line.startswith("sampler ") and "latents/s at" in line]
    assert [line.split()[1].rstrip(":") for line in samplers] == ["ddpm", "ddim", "dpmpp_2m"]
    assert "at 1000 steps" in samplers[0] and "at 200 steps" in samplers[1]
    steps = {line.split(":")[0]: float(line.split()[1]) for line in lines if line.startswith("train_step_")}
    assert set(steps) == {"train_step_cached", "train_step_encode"} and min(steps.values()) > 0
    name, value = lines[-1].split("=")
    assert name == "cache_speedup" and float(value) > 0


def test_encoding_costs_show_in_the_speedup():
    """A bigger encoder makes the uncached step slower, the cached one does not care."""
    diffusion = load_diffusion_config(ROOT / "configs/dm/unet_tiny.yaml")
    config = load_config(AutoencoderConfig, ROOT / "configs/ae/tiny.yaml")
    config = dataclasses.replace(config, channels=64, input_size=64)  # 16 x 16 latents, a 4x costlier encoder per pixel
    result = benchmark_training_step(diffusion, NeuralFieldAutoencoder(config), batch_size=2, repeats=3, log=lambda s: None)
    assert len(result.seconds["cached"]) == len(result.seconds["encode"]) == 3
    assert result.speedup() > 1.2, result.seconds


def test_result_arithmetic():
    bench = StepBench(batch=2, seconds={"cached": [1.0, 2.0, 1.0], "encode": [4.0, 4.0, 6.0]})
    assert bench.speedup() == 4.0 and bench.median("encode") == 4.0
    sampler = SamplerBench("ddpm", steps=5, batch=2, seconds=1.0)
    assert sampler.seconds_per_step == 0.2 and sampler.latents_per_second(1000) == pytest.approx(0.01)


def test_bad_arguments_exit_2(capsys):
    main = runpy.run_path(str(TOOL))["main"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--samplers", "euler"])
    assert exit_info.value.code == 2 and "choose from" in capsys.readouterr().err
    assert main(["--config", "missing.yaml"]) == 2 and "not found" in capsys.readouterr().err
