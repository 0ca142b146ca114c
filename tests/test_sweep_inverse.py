"""tools/sweep_inverse.py: the condition-scale sweep of the guided solver on held-out photos."""
import math

import torch

from inverse_testing import make_bundle
from dm_testing import write_photo_shards
from tool_testing import load_tool
from infd.checkpoint import save_model
from infd.diffusion.sampling import SamplingSpec
from infd.eval.inverse_sweep import hole_mask, sweep


def test_rows_per_task_and_scale_and_guidance_moves_towards_the_condition():
    model = make_bundle()
    photo = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = sweep(model, [photo], [0, 300], spec=SamplingSpec(steps=3), size=32, factor=4)
    assert [(r.task, r.scale) for r in rows] == [("inpaint", 0), ("inpaint", 300), ("sr", 0), ("sr", 300)]
    assert all(math.isfinite(r.condition_psnr) and math.isfinite(r.truth_psnr) and r.seconds > 0 for r in rows)
    inpaint, sr = rows[:2], rows[2:]
    assert inpaint[1].condition_psnr > inpaint[0].condition_psnr  # the known pixels come closer
    assert sr[1].condition_psnr > sr[0].condition_psnr  # so does the low-resolution input
    assert hole_mask(8)[0].tolist()[2] == [1, 1, 0, 0, 0, 0, 1, 1]


def test_the_tool_prints_the_table_and_refuses_bad_options(tmp_path, capsys):
    tool = load_tool("sweep_inverse")
    bundle = save_model(make_bundle(), tmp_path / "b.safetensors")
    data = write_photo_shards(tmp_path / "shards", count=2, per_shard=2)
    assert tool.main(["--checkpoint", str(bundle), "--data", data, "--num-photos", "1", "--scales", "0", "10",
                      "--tasks", "sr", "--size", "32", "--steps", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["task", "scale", "condition_psnr", "truth_psnr", "s/photo"]
    assert [line.split()[:2] for line in lines[2:]] == [["sr", "0"], ["sr", "10"]]
    assert tool.main(["--checkpoint", str(bundle), "--data", data, "--size", "30"]) == 2
    assert capsys.readouterr().err.count("error:") == 1
