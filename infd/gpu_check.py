"""GPU readiness in one run (``tools/check_gpu.py``): each check returns rows of one table.

- ``gpu_tests``: the tests marked ``gpu`` (skipped without CUDA), through pytest in a subprocess;
- ``training_steps``: 20 bf16 steps of each training stage on tiny synthetic data, with steps/s;
- ``big_render``: a 16384 x 16384 render of the bundled model into a tiled TIFF, with peak GPU memory;
- ``clif_throughput``: the paper-width CLIF's 3x3 convolutions in bf16, as TFLOP/s and as a share of the
  card's dense bf16 peak (``DENSE_BF16_TFLOPS``; unknown cards report n/a);
- ``nccl``: an all-reduce between two processes when two GPUs exist.

A failing check is a row saying so, not an exception: the table always prints.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s; matched by substring
# of torch.cuda.get_device_name, first match wins (so "H100 PCIe" is listed before "H100").
DENSE_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                     ("L4", 121.0), ("A10G", 70.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0))

Row = tuple[str, str, str]  # (check, result, detail)


def peak_tflops(name: str) -> float | None:
    return next((tflops for key, tflops in DENSE_BF16_TFLOPS if key in name), None)


def run_check(name: str, check: Callable[[], list[Row]]) -> list[Row]:
    """``check()``'s rows, or one row with the error's last line."""
    try:
        return check()
    except Exception as err:  # noqa: BLE001 - every failure becomes a row of the table
        last = (str(err).strip().splitlines() or [type(err).__name__])[-1][:160]
        traceback.print_exc(file=sys.stderr)
        return [(name, "FAILED", f"{type(err).__name__}: {last}")]


def gpu_tests() -> list[Row]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "--runslow", "-p", "no:cacheprovider",
                           str(ROOT / "tests")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    return [("tests marked gpu", "ok" if proc.returncode == 0 else "FAILED", summary)]


def _photo_shards(folder: Path, count: int = 8) -> str:
    import numpy as np
    from PIL import Image

    from infd.data.shards import write_shards

    src = folder / "photos"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        y, x = np.mgrid[0:96, 0:128] / 128
        img = np.stack([np.sin(6 * x + i), np.cos(5 * y - i), np.sin(4 * (x + y))], -1) * 0.4 + 0.5
        img += rng.normal(0, 0.02, img.shape)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(src / f"p{i}.png")
    write_shards(sorted(src.iterdir()), src, str(folder / "shard-%02d.tar"), max_count=4)
    return str(folder / "shard-{00..01}.tar")


def training_steps(steps: int = 20) -> list[Row]:
    """``steps`` bf16 steps of a small stage 1 and then stage 2 on its latents; steps/s from the run logs."""
    from infd.config import from_dict
    from infd.data.latent_cache import cache_latents
    from infd.training.ae_loop import AETrainConfig, train_autoencoder
    from infd.training.dm_loop import DMTrainConfig, train_diffusion
    from infd.training.run_dir import read_log

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = _photo_shards(tmp)
        ae = from_dict(AETrainConfig, {
            "run_dir": str(tmp / "ae"), "mixed_precision": "bf16", "max_steps": steps, "log_every": steps // 2,
            "image_every": 0, "checkpoint_every": steps, "trackers": [],
            "model": {"input_size": 64, "channels": 64, "channel_mult": [1, 2], "num_res_blocks": 1,
                      "z_channels": 4, "bottleneck": "kl", "field_channels": 32,
                      "renderer": {"name": "clif", "args": {"hidden": 64, "num_blocks": 2}}},
            "data": {"urls": shards, "batch_size": 8, "num_workers": 2,
                     "patches": {"encoder_size": 64, "patch_size": 64, "max_size": 256}},
            "loss": {"perceptual_weight": 0.0, "gan_weight": 0.5, "gan_start_step": steps // 2, "reg_weight": 1e-6}})
        result = train_autoencoder(ae, progress=False)
        rows.append(("stage 1, bf16, batch 8 of 64^2", f"{read_log(tmp / 'ae')[-1]['steps_per_s']:.2f} steps/s",
                     f"{result.step} steps, last loss {read_log(tmp / 'ae')[-1]['loss']:.4f}"))
        model = result.model.eval()
        weights = tmp / "ae" / "checkpoints" / "model-latest.safetensors"
        device = next(model.parameters()).device
        from infd.checkpoint import file_sha256

        cache_latents(lambda x: model.encode(x.to(device)).cpu(), shards, str(tmp / "lat" / "lat-%02d.tar"),
                      encoder_size=64, batch_size=8, flip=True,
                      stats_extra={"autoencoder": str(weights), "autoencoder_sha256": file_sha256(weights)})
        dm = from_dict(DMTrainConfig, {
            "run_dir": str(tmp / "dm"), "autoencoder": str(weights), "mixed_precision": "bf16", "max_steps": steps,
            "log_every": steps // 2, "sample_every": 0, "checkpoint_every": steps, "trackers": [],
            "diffusion": {"backbone": "unet", "model": {"in_channels": 4, "out_channels": 4, "channels": 64,
                                                        "channel_mult": [1, 2], "attention_ds": [2]},
                          "schedule": {"kind": "cosine"}, "objective": {"prediction": "v"}},
            "latents": {"urls": str(tmp / "lat" / "lat-00.tar"), "batch_size": 16, "shuffle_buffer": 16}})
        result = train_diffusion(dm, progress=False)
        rows.append(("stage 2, bf16, batch 16 of 4x32^2", f"{read_log(tmp / 'dm')[-1]['steps_per_s']:.2f} steps/s",
                     f"{result.step} steps, last loss {read_log(tmp / 'dm')[-1]['loss']:.4f}"))
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def big_render(size: int = 16384, device: str = "cuda") -> list[Row]:
    """The bundled model's sample at ``size``^2 into a tiled TIFF; time and peak GPU memory."""
    from infd.diffusion.sampling import SamplingSpec
    from infd.rendering.engine import prepare_renderer, render
    from infd.rendering.sampling import load_render_model, sample_latents
    from infd.rendering.sinks import FileSink

    device = torch.device(device)
    model = load_render_model().to(device).eval()
    with torch.inference_mode():
        phi = model.decode(sample_latents(model, [0], SamplingSpec(steps=20)))
    renderer = prepare_renderer(model.renderer, device)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        (path,) = render(renderer, phi, (size, size), sink=FileSink(Path(tmp) / "big.tif"))
        _sync(device)
        seconds = time.perf_counter() - start
        mb = path.stat().st_size / 2**20
    memory = (f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
              if device.type == "cuda" else "")
    return [(f"render {size}x{size} -> TIFF (fp32)", f"{seconds:.1f} s",
             f"{size * size / seconds / 1e6:.1f} MP/s{memory}, file {mb:.0f} MiB")]


def clif_throughput(side: int = 2048, repeats: int = 10, device: str = "cuda") -> list[Row]:
    """The paper-width CLIF (hidden 256, 2 residual blocks) on a ``side``^2 query grid in bf16 autocast."""
    from infd.renderers.clif import CLIF, CLIFConfig
    from infd.renderers.coords import make_query_grid

    device = torch.device(device)
    clif = CLIF(CLIFConfig(field_channels=128, hidden=256, num_blocks=2)).to(device).eval()
    clif = clif.to(memory_format=torch.channels_last)
    phi = torch.randn(1, 128, 256, 256, device=device)
    grid, cell = make_query_grid((side, side), None, 1, device=device)
    convs = [m for m in clif.modules() if isinstance(m, torch.nn.Conv2d)]
    flops = sum(2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] for m in convs) * side * side
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
        clif(phi, grid, cell)
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            clif(phi, grid, cell)
        _sync(device)
    seconds = (time.perf_counter() - start) / repeats
    tflops = flops / seconds / 1e12
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "this CPU"
    peak = peak_tflops(name)
    share = f"{100 * tflops / peak:.1f}% of {name}'s {peak:g} dense bf16 TFLOP/s" if peak else f"peak of {name} unknown"
    return [(f"CLIF 256-wide on {side}^2, bf16", f"{tflops:.1f} TFLOP/s", f"{seconds * 1e3:.1f} ms per render, {share}")]


NCCL_SCRIPT = """
import os, torch, torch.distributed as dist
dist.init_process_group("nccl")
rank = dist.get_rank()
torch.cuda.set_device(rank)
x = torch.full((1 << 24,), float(rank + 1), device="cuda")
dist.all_reduce(x)
torch.cuda.synchronize()
assert x[0].item() == 3.0, x[0].item()
dist.destroy_process_group()
"""


def nccl() -> list[Row]:
    if torch.cuda.device_count() < 2:
        return [("2-process NCCL all-reduce", "skipped", f"{torch.cuda.device_count()} GPU here")]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "nccl.py"
        script.write_text(NCCL_SCRIPT)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               str(script)], capture_output=True, text=True, timeout=180,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    detail = f"{time.perf_counter() - start:.1f} s including start-up"
    if proc.returncode:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
    return [("2-process NCCL all-reduce", "ok" if proc.returncode == 0 else "FAILED", detail)]


CHECKS = {"gpu tests": gpu_tests, "training": training_steps, "render": big_render, "clif": clif_throughput,
          "nccl": nccl}


def format_table(rows: list[Row]) -> str:
    lines = ["| check | result | detail |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)
