"""Noise schedules: closed forms of the three kinds, derived quantities, timestep grids."""
import math

import pytest
import torch

from infd.config import ConfigError, from_dict
from infd.diffusion.schedules import NoiseSchedule, ScheduleConfig, make_schedule


def test_linear_betas_are_the_arithmetic_progression():
    schedule = make_schedule(kind="linear", num_steps=1000, beta_start=0.0015, beta_end=0.0195)
    assert schedule.betas.dtype == torch.float64 and schedule.num_steps == 1000
    step = (0.0195 - 0.0015) / 999
    for t in (0, 1, 500, 998, 999):
        assert schedule.betas[t].item() == pytest.approx(0.0015 + t * step, rel=1e-12)


def test_scaled_linear_is_linear_in_sqrt_beta():
    schedule = make_schedule(kind="scaled_linear", num_steps=1000, beta_start=0.00085, beta_end=0.012)
    root = schedule.betas.sqrt()
    assert root[0].item() == pytest.approx(math.sqrt(0.00085), rel=1e-12)
    assert root[-1].item() == pytest.approx(math.sqrt(0.012), rel=1e-12)
    step = (math.sqrt(0.012) - math.sqrt(0.00085)) / 999
    torch.testing.assert_close(root.diff(), torch.full((999,), step, dtype=torch.float64), rtol=1e-9, atol=0)


def test_cosine_alphas_cumprod_follow_the_cosine_law_until_the_clip():
    s, T = 0.008, 1000
    schedule = make_schedule(kind="cosine", num_steps=T, cosine_s=s, max_beta=0.999)

    def f(u):
        return math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    unclipped = int((schedule.betas < 0.999).sum())
    assert unclipped >= T - 5  # only the very last betas hit the clip
    for t in (0, 10, 250, 500, 900, unclipped - 1):
        assert schedule.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert schedule.betas.max().item() <= 0.999


@pytest.mark.parametrize("kind", ["linear", "scaled_linear", "cosine"])
def test_derived_quantities(kind):
    schedule = make_schedule(kind=kind)
    log_cumprod = torch.cumsum(torch.log1p(-schedule.betas), 0)
    torch.testing.assert_close(schedule.alphas_cumprod, log_cumprod.exp(), rtol=1e-12, atol=0)
    torch.testing.assert_close(schedule.alphas_cumprod_prev[1:], schedule.alphas_cumprod[:-1])
    assert schedule.alphas_cumprod_prev[0].item() == 1.0
    assert bool((schedule.alphas_cumprod.diff() < 0).all())
    t = torch.tensor([0, 7, 999])
    x = torch.zeros(3, 2, 4, 4, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t, x)
    assert alpha.shape == (3, 1, 1, 1)
    torch.testing.assert_close(alpha ** 2 + sigma ** 2, torch.ones_like(alpha))
    snr = schedule.snr_at(t, x)
    torch.testing.assert_close(snr, alpha ** 2 / sigma ** 2)
    x0, noise = torch.randn(3, 2, 4, 4, dtype=torch.float64), torch.randn(3, 2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(schedule.add_noise(x0, noise, t), alpha * x0 + sigma * noise)


@pytest.mark.parametrize("spacing", ["uniform", "quadratic", "log_snr"])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_spaced_timesteps_are_distinct_descending_and_span_the_range(kind, spacing):
    schedule = make_schedule(kind=kind)
    for steps in (2, 10, 50, 999, 1000):
        grid = schedule.spaced_timesteps(steps, spacing)
        assert len(grid) == steps and grid[0] == 999 and grid[-1] == 0
        assert all(a > b for a, b in zip(grid, grid[1:]))
    assert schedule.spaced_timesteps(1000, spacing) == list(range(999, -1, -1))


def test_uniform_spacing_is_even():
    schedule = make_schedule(num_steps=1000)
    grid = schedule.spaced_timesteps(4)
    assert grid == [999, 666, 333, 0]
    gaps = torch.tensor(schedule.spaced_timesteps(37)).diff().abs()
    assert gaps.max() - gaps.min() <= 1


def test_log_snr_spacing_is_even_in_log_snr():
    schedule = make_schedule(kind="scaled_linear")
    grid = schedule.spaced_timesteps(20, "log_snr")
    gaps = schedule.log_snr[grid].diff()
    ideal = (schedule.log_snr[0] - schedule.log_snr[-1]) / 19
    assert float((gaps - ideal).abs().max()) < 0.25 * float(ideal)


def test_bad_schedules_fail_clearly():
    with pytest.raises(ConfigError, match="kind"):
        from_dict(ScheduleConfig, {"kind": "sigmoid"})
    with pytest.raises(ValueError, match="beta_start"):
        ScheduleConfig(beta_start=0.02, beta_end=0.01)
    with pytest.raises(ValueError, match="steps"):
        make_schedule().spaced_timesteps(1001)
    with pytest.raises(ValueError, match="spacing"):
        make_schedule().spaced_timesteps(10, "cubic")
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        NoiseSchedule(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match="timesteps"):
        make_schedule().alpha_sigma(torch.tensor([1000]), torch.zeros(1, 1))
