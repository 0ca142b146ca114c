"""Samplers on data whose exact denoiser is known (Gaussians and a Gaussian mixture, per scalar)."""
import math

import pytest
import torch

from diffusion_testing import perturbed, tiny_unet
from infd.diffusion.analytic import GaussianMixtureDenoiser
from infd.diffusion.guidance import ClassifierFreeGuidance
from infd.diffusion.noise import PerSampleRNG
from infd.diffusion.samplers import SamplerConfig, sample, sample_ddim, sample_ddpm, sample_dpmpp_2m
from infd.diffusion.schedules import make_schedule

MU, S = 0.5, 0.8
SHAPE = (5, 1, 64, 64)  # 20480 scalars


def noise(seed=0, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def quantile_noise(seed=0, shape=SHAPE):
    """Stratified N(0, 1) draws (the normal quantiles of a uniform grid, shuffled): for deterministic
    samplers this takes the Monte-Carlo error out of the moments, leaving the sampler's own error."""
    n = torch.Size(shape).numel()
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = (2 ** 0.5 * torch.erfinv(2 * u - 1)).float()
    return z[torch.randperm(n, generator=torch.Generator().manual_seed(seed))].reshape(shape)


def assert_matches_data(x, mu, s, tol=0.02):
    """Sample mean within ``tol * s`` of ``mu`` and std within ``tol`` (relative) of ``s``."""
    assert abs(x.mean().item() - mu) < tol * s, f"mean {x.mean().item():.4f} vs {mu}"
    assert abs(x.std().item() / s - 1) < tol, f"std {x.std().item():.4f} vs {s}"


def ddim_gaussian_contraction(schedule, steps, s):
    """Closed form of deterministic DDIM on N(mu, s^2) data: the centred state is scaled each step by
    cos(phi_s - phi_t), phi = atan2(sigma, alpha s), while the exact flow keeps it on the marginal."""
    abar = [float(schedule.alphas_cumprod[t]) for t in schedule.spaced_timesteps(steps)] + [1.0]
    phi = [math.atan2(math.sqrt(1 - a), math.sqrt(a) * s) for a in abar]
    return math.prod(math.cos(p - q) for p, q in zip(phi, phi[1:]))


@pytest.mark.parametrize("variance", ["small", "large"])
def test_ddpm_1000_steps_reproduces_gaussian_data(variance):
    """"small" (posterior) variance ignores the uncertainty of x0_pred: about -1% in std at 1000 steps."""
    schedule = make_schedule(kind="scaled_linear")
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    x = sample_ddpm(model, noise(shape=(10, 1, 64, 64)), schedule, 1000, variance=variance,
                    rng=torch.Generator().manual_seed(1))
    assert_matches_data(x, MU, S)


@pytest.mark.parametrize("kind", ["linear", "scaled_linear", "cosine"])
def test_ddim_50_steps_on_gaussian_data_matches_its_closed_form(kind):
    """Deterministic DDIM loses variance at O(angle^2) per step (>= ~(pi/2)^2 / (2 steps) overall, 2.5% at
    50 steps), so its std is checked against that closed form, its mean against the data."""
    schedule = make_schedule(kind=kind)
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    x_T = noise()
    x = sample_ddim(model, x_T, schedule, 50, eta=0.0)
    expected = ddim_gaussian_contraction(schedule, 50, S)
    assert 0.94 < expected < 0.98
    assert abs(x.mean().item() - MU) < 0.02 * S
    # the map x_T -> x_0 is affine, so the ratio is exact up to the tiny x_T-prior mismatch at t = T-1
    assert x.std().item() / (S * x_T.std().item()) == pytest.approx(expected, rel=2e-3)


def test_ddim_converges_to_the_data_with_more_steps():
    schedule = make_schedule(kind="scaled_linear")
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    assert_matches_data(sample_ddim(model, quantile_noise(), schedule, 500), MU, S, tol=0.01)


@pytest.mark.parametrize("kind", ["linear", "scaled_linear"])
def test_dpmpp_2m_25_steps_reproduces_gaussian_data(kind):
    schedule = make_schedule(kind=kind)
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    assert_matches_data(sample_dpmpp_2m(model, quantile_noise(), schedule, 25), MU, S, tol=0.01)


MIXTURE = {"means": [-2.0, 1.5], "stds": [0.4, 0.6], "weights": [0.3, 0.7]}


@pytest.mark.parametrize("sampler,steps", [(sample_ddim, 200), (sample_dpmpp_2m, 50)])
def test_gaussian_mixture_modes_and_weights(sampler, steps):
    schedule = make_schedule(kind="scaled_linear")
    model = GaussianMixtureDenoiser(schedule, **MIXTURE)
    x = sampler(model, quantile_noise(2), schedule, steps)
    right = x > -0.3  # the components' tails barely reach this point (< 0.2% of the right one)
    assert right.float().mean().item() == pytest.approx(0.7, abs=0.005)
    assert_matches_data(x[~right], -2.0, 0.4, tol=0.04)
    assert_matches_data(x[right], 1.5, 0.6, tol=0.04)


@pytest.mark.parametrize("sampler", [sample_ddim, sample_dpmpp_2m])
def test_v_and_eps_prediction_give_the_same_samples(sampler):
    schedule = make_schedule(kind="cosine")
    eps_model = GaussianMixtureDenoiser(schedule, [-1.0, 1.0], [0.3, 0.3], prediction="eps")
    v_model = GaussianMixtureDenoiser(schedule, [-1.0, 1.0], [0.3, 0.3], prediction="v")
    x_T = noise(shape=(2, 1, 16, 16))
    x_eps = sampler(eps_model, x_T, schedule, 20, prediction="eps")
    x_v = sampler(v_model, x_T, schedule, 20, prediction="v")
    torch.testing.assert_close(x_v, x_eps, atol=1e-4, rtol=0)
    assert not torch.allclose(sampler(v_model, x_T, schedule, 20, prediction="eps"), x_eps, atol=1e-2)


def test_ddpm_equals_ddim_with_eta_one():
    """DDIM with eta = 1 is ancestral DDPM on the respaced schedule (Song et al. 2021, Sec. 4.1)."""
    schedule = make_schedule(kind="linear")
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    x_T = noise(shape=(2, 1, 8, 8))
    a = sample_ddpm(model, x_T, schedule, 30, rng=PerSampleRNG([1, 2]))
    b = sample_ddim(model, x_T, schedule, 30, eta=1.0, rng=PerSampleRNG([1, 2]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    c = sample_ddim(model, x_T, schedule, 30, eta=1.0, rng=PerSampleRNG([1, 3]))
    assert not torch.allclose(a[1], c[1], atol=1e-2)


@pytest.mark.parametrize("sampler", [sample_ddpm, sample_ddim])
def test_per_sample_seeds_reproduce_each_sample_alone(sampler):
    schedule = make_schedule(kind="linear")
    model = GaussianMixtureDenoiser(schedule, [-1.0, 1.0], [0.3, 0.3])
    kwargs = {"eta": 1.0} if sampler is sample_ddim else {}

    def run(seeds):
        rng = PerSampleRNG(seeds)
        return sampler(model, rng.randn((1, 8, 8)), schedule, 40, rng=rng, **kwargs)

    both = run([3, 5])
    torch.testing.assert_close(both[:1], run([3]), atol=0, rtol=0)
    torch.testing.assert_close(both[1:], run([5]), atol=0, rtol=0)
    assert not torch.allclose(both[0], both[1])


def test_cond_fn_with_the_exact_classifier_gradient_samples_the_class():
    """Unconditional mixture + grad log p(y = k | x_t) is the exact class-k score (Dhariwal & Nichol)."""
    schedule = make_schedule(kind="scaled_linear")
    model = GaussianMixtureDenoiser(schedule, **MIXTURE)

    def cond_fn(x, t, x0_pred):
        log_probs = model.component_log_probs(x, t)  # (K, B, ...)
        log_posterior = log_probs[0] - torch.logsumexp(log_probs, dim=0)
        return torch.autograd.grad(log_posterior.sum(), x)[0]

    x = sample_dpmpp_2m(model, quantile_noise(4, (2, 1, 64, 64)), schedule, 50, cond_fn=cond_fn)
    assert (x < -0.3).float().mean().item() > 0.999
    assert_matches_data(x, -2.0, 0.4, tol=0.04)
    rng = torch.Generator().manual_seed(0)
    x = sample_ddpm(model, noise(4, (1, 1, 32, 32)), schedule, 250, cond_fn=cond_fn, rng=rng)
    assert (x < -0.3).float().mean().item() > 0.995 and abs(x.mean().item() + 2.0) < 0.05


def test_cond_fn_sees_a_differentiable_x0_prediction():
    """x0_pred must be a function of x_t with gradients; for Gaussian data d x0 / d x_t is known."""
    schedule = make_schedule(kind="linear")
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    slopes = []

    def cond_fn(x, t, x0_pred):
        grad = torch.autograd.grad(x0_pred.sum(), x)[0]
        alpha, sigma = schedule.alpha_sigma(t, x)
        torch.testing.assert_close(grad, (alpha * S ** 2 / (alpha ** 2 * S ** 2 + sigma ** 2)).expand_as(x))
        slopes.append(grad.mean().item())
        return torch.zeros_like(x)

    x_T = noise(shape=(2, 1, 4, 4))
    guided = sample_ddim(model, x_T, schedule, 10, cond_fn=cond_fn)
    assert len(slopes) == 10
    torch.testing.assert_close(guided, sample_ddim(model, x_T, schedule, 10), atol=1e-6, rtol=0)


def test_callback_sees_every_step_and_can_replace_the_state():
    schedule = make_schedule(kind="linear")
    model = GaussianMixtureDenoiser(schedule, [MU], [S])
    seen = []

    def callback(i, t, x, x0_pred):
        seen.append((i, t))
        if i == 0:
            return torch.zeros_like(x)  # restart from the marginal's centre at the second timestep

    out = sample_ddim(model, noise(shape=(1, 1, 4, 4)), schedule, 8, callback=callback)
    assert [t for _, t in seen] == schedule.spaced_timesteps(8) and [i for i, _ in seen] == list(range(8))
    from_zero = sample_ddim(model, torch.zeros(1, 1, 4, 4), schedule, 8)  # x = 0 everywhere stays uniform
    assert float(out.std()) < 1e-5 and float(from_zero.std()) < 1e-5


def test_sample_dispatches_on_the_config_and_applies_guidance():
    schedule = make_schedule(kind="linear")
    model = GaussianMixtureDenoiser(schedule, [-1.0, 1.0], [0.3, 0.3])
    x_T, labels = noise(shape=(2, 1, 4, 4)), torch.tensor([0, 1])
    plain = sample(model, x_T, schedule, SamplerConfig(name="ddim", steps=10, eta=0.0), cond=labels)
    torch.testing.assert_close(plain, sample_ddim(model, x_T, schedule, 10, cond=labels))
    guided = sample(model, x_T, schedule, SamplerConfig(name="dpmpp_2m", steps=10, guidance_scale=3.0),
                    cond=labels)
    assert guided[0].mean() < -0.5 and guided[1].mean() > 0.5
    with pytest.raises(ValueError, match="eps"):
        sample_ddim(model, x_T, schedule, 10, prediction="x0")


def test_per_sample_seeds_with_a_guided_backbone():
    model = ClassifierFreeGuidance(perturbed(tiny_unet(num_classes=3)), 2.0)
    schedule = make_schedule(kind="scaled_linear")

    def run(seeds, labels):
        rng = PerSampleRNG(seeds)
        return sample_ddim(model, rng.randn((3, 8, 8)), schedule, 5, eta=1.0, rng=rng,
                           cond=torch.tensor(labels), progress=True)

    both = run([3, 5], [0, 2])
    # equal up to float rounding of batched vs single convolutions (amplified by 1 / alpha_T ~ 80)
    torch.testing.assert_close(both[:1], run([3], [0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(both[1:], run([5], [2]), atol=1e-3, rtol=0)
    assert (both[0] - run([4], [0])[0]).abs().max() > 0.1
