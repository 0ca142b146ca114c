"""CUDA paths (marked gpu: skipped without CUDA; tools/check_gpu.py runs them) and the GPU check's own code
on CPU, so it is known to run before a GPU machine is at hand."""
import os
import sys

import numpy as np
import pytest
import torch

from infd import gpu_check
from infd.diffusion.sampling import SamplingSpec
from infd.pipeline import Pipeline
from infd.rendering.engine import prepare_renderer, render
from infd.rendering.sampling import sample_latents

from inverse_testing import make_bundle
from process_testing import run_group
from tool_testing import ROOT


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()


@pytest.mark.gpu
def test_cuda_render_matches_the_cpu_render(bundle):
    z = sample_latents(bundle, [0, 1], SamplingSpec(steps=3))
    with torch.inference_mode():
        phi = bundle.decode(z)
        cpu = render(bundle.renderer, phi, (96, 80))
        gpu_model = make_bundle().cuda().eval()
        fast = prepare_renderer(gpu_model.renderer, torch.device("cuda"))  # channels_last, FastCLIF
        gpu = render(fast, phi.cuda(), (96, 80), tile=32)
        bf16 = render(gpu_model.renderer, phi.cuda(), (96, 80), dtype=torch.bfloat16)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)
    assert (bf16.cpu() - cpu).abs().max() < 0.05


@pytest.mark.gpu
def test_cuda_pipeline_samples_like_the_cpu_one(bundle):
    cpu = Pipeline(bundle, device="cpu").sample(seeds=[3], height=48, steps=5, output="tensor")
    gpu = Pipeline(make_bundle(), device="cuda").sample(seeds=[3], height=48, steps=5, output="tensor")
    assert (gpu - cpu).abs().max() < 2e-2  # the same noise; float differences of 5 sampler steps


@pytest.mark.gpu
def test_cuda_training_steps_in_bf16():
    rows = gpu_check.training_steps(steps=4)
    assert [r[0].split(",")[0] for r in rows] == ["stage 1", "stage 2"] and all("steps/s" in r[1] for r in rows)


def test_the_check_runs_its_training_and_kernels_on_cpu():
    # In a fresh process: accelerate keeps one AcceleratorState per process, and this one asks for bf16.
    code = "from infd.gpu_check import training_steps; print(training_steps(steps=2))"
    proc = run_group([sys.executable, "-c", code], timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = eval(proc.stdout.strip().splitlines()[-1])  # the list of (check, result, detail) tuples it printed
    assert len(rows) == 2 and all(float(r[1].split()[0]) > 0 for r in rows), rows
    (clif,) = gpu_check.clif_throughput(side=32, repeats=1, device="cpu")
    assert "TFLOP/s" in clif[1] and "peak of this CPU unknown" in clif[2]
    (big,) = gpu_check.big_render(size=96, device="cpu")
    assert big[0] == "render 96x96 -> TIFF (fp32)" and "MP/s" in big[2]


def test_failed_checks_are_rows_and_peaks_are_looked_up():
    def broken():
        raise RuntimeError("first line\nCUDA error: out of memory")

    assert gpu_check.run_check("render", broken) == [("render", "FAILED", "RuntimeError: CUDA error: out of memory")]
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == 756.0 and gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0 and gpu_check.peak_tflops("Some GPU") is None
    assert gpu_check.format_table([("a", "b", "c")]).splitlines()[-1] == "| a | b | c |"


def test_without_cuda_the_tool_says_so_and_exits_0():
    code = "import torch, runpy, sys; torch.cuda.is_available = lambda: False; sys.argv = ['check_gpu.py']; " \
           f"runpy.run_path({str(ROOT / 'tools' / 'check_gpu.py')!r}, run_name='__main__')"
    proc = run_group([sys.executable, "-c", code], timeout=120, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1 and "no CUDA device" in proc.stdout, proc.stderr
