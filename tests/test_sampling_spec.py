"""The one sampling spec: its checks, the one list of sampler names, and how it meets the bundle's config."""
import dataclasses
import subprocess
import sys

import pytest

from infd.config import ConfigError, from_dict
from infd.diffusion.sampling import CLASS_PER_SEED, SAMPLER_NAMES, SamplingError, SamplingSpec
from infd.diffusion.samplers import SAMPLERS, SamplerConfig, sample_ddim


def test_defaults_are_dpmpp_2m_30_steps_without_guidance():
    spec = SamplingSpec()
    assert (spec.sampler, spec.steps, spec.cfg_scale, spec.class_label, spec.eta) == ("dpmpp_2m", 30, 1.0, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.steps = 3


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": "euler"}, "unknown sampler 'euler' (choose from ddpm, ddim, dpmpp_2m)"),
    ({"steps": 0}, "--steps must be at least 1"),
    ({"steps": 2.5}, "--steps must be at least 1"),
    ({"cfg_scale": float("nan")}, "--cfg-scale must be a finite number >= 0"),
    ({"cfg_scale": -1.0}, "--cfg-scale must be a finite number >= 0"),
    ({"class_label": -1}, "--class must be a label >= 0"),
    ({"eta": -0.5}, "eta must be a number >= 0"),
])
def test_bad_specs_are_one_line_sampling_errors(kwargs, message):
    with pytest.raises(SamplingError) as info:
        SamplingSpec(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_the_sampler_names_are_one_tuple():
    assert tuple(SAMPLERS) == SAMPLER_NAMES and SAMPLERS["ddim"] is sample_ddim
    with pytest.raises(ConfigError, match="'sampler.name' must be one of"):
        from_dict(SamplerConfig, {"name": "euler"}, "sampler")


def test_spec_overrides_the_bundles_config_and_keeps_its_eta_unless_set():
    config = SamplerConfig(name="ddim", steps=200, eta=1.0, guidance_scale=1.0, clip_x0=3.0, spacing="uniform")
    applied = SamplingSpec("dpmpp_2m", 7, cfg_scale=2.5).apply_to(config)
    assert applied == SamplerConfig(name="dpmpp_2m", steps=7, eta=1.0, guidance_scale=2.5, clip_x0=3.0,
                                    spacing="uniform")
    assert SamplingSpec(eta=0.0).apply_to(config).eta == 0.0


def test_the_spec_and_the_command_line_checks_import_no_torch():
    code = ("import sys, infd.diffusion.sampling, infd.rendering.request, infd.cli; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_a_class_per_seed_is_the_seed_mod_the_class_count():
    spec = SamplingSpec(class_label=CLASS_PER_SEED)
    assert spec.labels([0, 5, 6, 11], 4) == [0, 1, 2, 3]
    assert spec.labels([0, 5], None) is None  # an unconditional prior: no class
    assert SamplingSpec(class_label=2).labels([0, 5], 4) == [2, 2] and SamplingSpec().labels([0], 4) is None
    with pytest.raises(SamplingError, match="'seed' or 'none'"):
        SamplingSpec(class_label="flowers")
