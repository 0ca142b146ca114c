"""The command lines' sampling options: one spec, two scale names, and the old names as deprecated aliases."""
import numpy as np
import pytest
from PIL import Image

import infd.rendering.sampling as sampling
from infd.diffusion.sampling import CLASS_PER_SEED, DEFAULT_CFG_SCALE

from inverse_testing import ROOT
from tool_testing import load_tool

PIXELS_LAYOUT = ROOT / "configs" / "inverse" / "super_resolution.yaml"


@pytest.fixture(scope="module")
def render_tool():
    return load_tool("render")


@pytest.fixture(scope="module")
def inverse_tool():
    return load_tool("inverse")


def test_render_guidance_is_a_deprecated_alias_of_cfg_scale(render_tool, capsys):
    parser = render_tool.build_parser()
    assert parser.parse_args([]).cfg_scale == DEFAULT_CFG_SCALE
    assert parser.parse_args(["--cfg-scale", "2"]).cfg_scale == 2.0
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["--guidance", "2.5"]).cfg_scale == 2.5
    assert capsys.readouterr().err == "render.py: note: --guidance is deprecated, use --cfg-scale\n"
    assert "--guidance" not in parser.format_help() and "--cfg-scale" in parser.format_help()


def test_render_samples_a_class_per_seed_by_default(render_tool, inverse_tool):
    parse = render_tool.build_parser().parse_args
    assert parse([]).class_label == CLASS_PER_SEED and DEFAULT_CFG_SCALE > 1
    assert [parse(["--class", text]).class_label for text in ("2", "none", "seed")] == [2, None, CLASS_PER_SEED]
    assert inverse_tool.build_parser().parse_args(["--layout", "x.yaml"]).class_label is None  # unconditional


def test_a_class_per_seed_is_the_seeds_class_given_alone(render_tool, tmp_path):
    """Default: seed s takes class s mod 4 of the bundled prior, guided; the same as --class s mod 4 for it."""
    def render(name, *args):
        assert render_tool.main(["--size", "16", "--steps", "3", *args, "--out", str(tmp_path / name)]) == 0
        return np.asarray(Image.open(tmp_path / name)) if (tmp_path / name).suffix else None

    render("pair", "--seed", "5,6")  # one batch, two classes: pair/seed0005.png, pair/seed0006.png
    pair = [np.asarray(Image.open(tmp_path / "pair" / f"seed{seed:04d}.png")) for seed in (5, 6)]
    alone = [render(f"c{seed}.png", "--seed", str(seed), "--class", str(seed % 4)) for seed in (5, 6)]
    assert all(np.array_equal(a, b) for a, b in zip(pair, alone))
    other = render("c2_seed5.png", "--seed", "5", "--class", "2")
    unguided = render("none.png", "--seed", "5", "--class", "none")
    assert not np.array_equal(pair[0], other) and not np.array_equal(pair[0], unguided)


def test_inverse_guidance_scale_is_a_deprecated_alias_of_condition_scale(inverse_tool, capsys):
    parser = inverse_tool.build_parser()
    args = parser.parse_args(["--layout", "x.yaml"])
    assert (args.condition_scale, args.cfg_scale, args.sampler) == (None, 1.0, "ddim")  # None: per term kind
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["--layout", "x.yaml", "--guidance-scale", "7"]).condition_scale == 7.0
    assert capsys.readouterr().err == "inverse.py: note: --guidance-scale is deprecated, use --condition-scale\n"
    assert "--guidance-scale" not in parser.format_help()


def test_the_old_render_flag_renders_the_same_file(render_tool, tmp_path, capsys):
    old, new = tmp_path / "old.png", tmp_path / "new.png"
    assert render_tool.main(["--size", "16", "--steps", "2", "--guidance", "2", "--out", str(old)]) == 0
    assert "--guidance is deprecated" in capsys.readouterr().err
    assert render_tool.main(["--size", "16", "--steps", "2", "--cfg-scale", "2", "--out", str(new)]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(old)), np.asarray(Image.open(new)))


@pytest.mark.parametrize("args, message", [
    (["--guidance-scale", "nan"], "--condition-scale must be a number >= 0"),
    (["--cfg-scale", "-1"], "--cfg-scale must be a finite number >= 0"),
    (["--sampler", "euler"], "choose from ddpm, ddim, dpmpp_2m"),
    (["--class", "-2"], "--class must be a label >= 0"),
])
def test_bad_sampling_options_are_one_error_line(inverse_tool, tmp_path, capsys, args, message):
    code = inverse_tool.main(["--layout", str(PIXELS_LAYOUT), "--out", str(tmp_path / "r.png"), *args])
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if "deprecated" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("inverse.py: error:") and message in lines[0], lines


def test_an_unknown_class_word_is_one_error_line(render_tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        render_tool.build_parser().parse_args(["--class", "flowers"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("render.py: error: argument --class: must be a label >= 0, 'seed' or 'none', "
                                       "got 'flowers'\n")


def test_render_without_the_bundled_model_is_one_line(render_tool, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sampling, "BUNDLED_CHECKPOINT", tmp_path / "missing" / "default.safetensors")
    assert render_tool.main(["--size", "16", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reinstall infd or pass --checkpoint" in err[0], err
    assert not (tmp_path / "x.png").exists()


def test_an_inverse_request_holds_one_sampling_spec_per_solver(tmp_path):
    from infd.diffusion.sampling import SamplingSpec
    from infd.inverse.job import make_inverse_request

    common = dict(layout=str(PIXELS_LAYOUT), size="32", out=str(tmp_path / "r.png"), sampler="ddpm", cfg_scale=2.0)
    guided = make_inverse_request(**common, steps=7, condition_scale=5.0)
    assert guided.sampling == SamplingSpec("ddpm", 7, cfg_scale=2.0) and guided.optimize_steps is None
    assert guided.condition_scale == 5.0
    optimize = make_inverse_request(**common, solver="optimize", optimize_steps=30, steps=4)
    assert optimize.sampling == SamplingSpec("ddpm", 4, cfg_scale=2.0) and optimize.optimize_steps == 30
