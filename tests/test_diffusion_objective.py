"""Training objective: targets, closed-form optimal loss, min-SNR weights, per-sample seeding."""
import pytest
import torch

from infd.diffusion.analytic import GaussianMixtureDenoiser
from infd.diffusion.noise import PerSampleRNG
from infd.diffusion.objective import ObjectiveConfig, diffusion_loss, loss_weight, sample_timesteps
from infd.diffusion.prediction import model_target, to_x0_eps
from infd.diffusion.schedules import make_schedule
from infd.models.unet import UNet, UNetConfig


class Oracle(torch.nn.Module):
    """Knows x0, so it can return the exact eps or v target from x_t."""

    def __init__(self, schedule, x0, prediction):
        super().__init__()
        self.schedule, self.x0, self.prediction = schedule, x0, prediction

    def forward(self, x, t, cond=None):
        alpha, sigma = self.schedule.alpha_sigma(t, x)
        eps = (x - alpha * self.x0) / sigma
        return eps if self.prediction == "eps" else alpha * eps - sigma * self.x0


def test_eps_v_conversions_round_trip():
    schedule = make_schedule(kind="cosine")
    x0, eps = torch.randn(4, 3, 5, 5, dtype=torch.float64), torch.randn(4, 3, 5, 5, dtype=torch.float64)
    t = torch.tensor([0, 100, 600, 990])
    alpha, sigma = schedule.alpha_sigma(t, x0)
    x_t = alpha * x0 + sigma * eps
    for prediction in ("eps", "v"):
        target = model_target(x0, eps, alpha, sigma, prediction)
        x0_back, eps_back = to_x0_eps(target, x_t, alpha, sigma, prediction)
        torch.testing.assert_close(x0_back, x0, rtol=0, atol=1e-9 if prediction == "v" else 1e-6)
        torch.testing.assert_close(eps_back, eps, rtol=0, atol=1e-9)
    v = model_target(x0, eps, alpha, sigma, "v")
    torch.testing.assert_close(alpha * v + sigma * x_t, eps)  # eps from v, written the other way round


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_oracle_has_zero_loss(prediction):
    schedule = make_schedule()
    x0 = torch.randn(6, 3, 8, 8)
    loss = diffusion_loss(Oracle(schedule, x0, prediction), x0, schedule, prediction=prediction)
    assert loss.shape == (6,) and float(loss.max()) < 1e-8
    other = "v" if prediction == "eps" else "eps"
    assert float(diffusion_loss(Oracle(schedule, x0, other), x0, schedule, prediction=prediction).mean()) > 1e-3


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_exact_denoiser_reaches_the_closed_form_minimum(prediction):
    """For x0 ~ N(mu, s^2): the MMSE of a target y given x_t is Var(y) - Cov(y, x_t)^2 / Var(x_t)."""
    mu, s = 0.3, 0.7
    schedule = make_schedule(kind="scaled_linear")
    model = GaussianMixtureDenoiser(schedule, [mu], [s], prediction=prediction)
    gen = torch.Generator().manual_seed(0)
    x0 = mu + s * torch.randn(8, 1, 48, 48, generator=gen)
    for step in (50, 400, 900):
        t = torch.full((8,), step)
        loss = diffusion_loss(model, x0, schedule, prediction=prediction, t=t, rng=gen).mean().item()
        a2 = float(schedule.alphas_cumprod[step])
        alpha, sigma = a2 ** 0.5, (1 - a2) ** 0.5
        var_x = a2 * s ** 2 + sigma ** 2
        if prediction == "eps":
            expected = 1 - sigma ** 2 / var_x
        else:  # v = alpha eps - sigma x0
            expected = (a2 + sigma ** 2 * s ** 2) - (alpha * sigma * (1 - s ** 2)) ** 2 / var_x
        assert loss == pytest.approx(expected, rel=0.03)


def test_min_snr_gamma_weights():
    schedule = make_schedule()
    snr = schedule.alphas_cumprod / (1 - schedule.alphas_cumprod)
    gamma = 5.0
    w_eps = loss_weight(snr, "eps", gamma)
    w_v = loss_weight(snr, "v", gamma)
    torch.testing.assert_close(w_eps, torch.minimum(snr, torch.full_like(snr, gamma)) / snr)
    torch.testing.assert_close(w_v, torch.minimum(snr, torch.full_like(snr, gamma)) / (snr + 1))
    low = snr < gamma
    assert bool((w_eps[low] == 1).all()) and bool((w_eps[~low] < 1).all())
    torch.testing.assert_close(loss_weight(snr, "eps", None), torch.ones_like(snr))

    x0 = torch.randn(4, 3, 8, 8)
    model = GaussianMixtureDenoiser(schedule, [0.0], [1.0])
    t = torch.tensor([0, 10, 500, 999])
    noise = torch.randn_like(x0)
    plain = diffusion_loss(model, x0, schedule, t=t, noise=noise)
    weighted = diffusion_loss(model, x0, schedule, t=t, noise=noise, min_snr_gamma=gamma)
    torch.testing.assert_close(weighted, plain * w_eps[t].float())


def test_per_sample_seeds_make_each_loss_reproducible_alone():
    schedule = make_schedule()
    model = GaussianMixtureDenoiser(schedule, [0.0], [0.5])
    x0 = torch.randn(2, 3, 8, 8)
    both = diffusion_loss(model, x0, schedule, rng=PerSampleRNG([3, 5]))
    torch.testing.assert_close(both[:1], diffusion_loss(model, x0[:1], schedule, rng=PerSampleRNG([3])))
    torch.testing.assert_close(both[1:], diffusion_loss(model, x0[1:], schedule, rng=PerSampleRNG([5])))


def test_timesteps_are_uniform():
    schedule = make_schedule(num_steps=100)
    t = sample_timesteps(50_000, schedule, "cpu", torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and int(t.min()) == 0 and int(t.max()) == 99
    counts = torch.bincount(t, minlength=100).float()
    assert float(counts.std() / counts.mean()) < 0.1  # binomial noise is ~0.045
    seeded = PerSampleRNG([1, 2, 3])
    assert sample_timesteps(3, schedule, "cpu", seeded).tolist() == [
        sample_timesteps(1, schedule, "cpu", PerSampleRNG([s])).item() for s in (1, 2, 3)]


def test_a_tiny_unet_learns_a_fixed_batch():
    schedule = make_schedule()
    config = UNetConfig(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), head_channels=8,
                        norm_groups=8)
    model = UNet(config)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x0, t, noise = torch.randn(4, 3, 8, 8), torch.tensor([100, 300, 500, 700]), torch.randn(4, 3, 8, 8)
    losses = []
    for _ in range(40):
        loss = diffusion_loss(model, x0, schedule, t=t, noise=noise, prediction="v").mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_inputs_fail_clearly():
    schedule = make_schedule()
    model = GaussianMixtureDenoiser(schedule, [0.0], [1.0])
    with pytest.raises(ValueError, match="prediction"):
        ObjectiveConfig(prediction="x0")
    with pytest.raises(ValueError, match="min_snr_gamma"):
        ObjectiveConfig(min_snr_gamma=0.0)
    with pytest.raises(ValueError, match="t must be"):
        diffusion_loss(model, torch.randn(2, 3, 4, 4), schedule, t=torch.tensor([1]))
    with pytest.raises(ValueError, match="seeds"):
        diffusion_loss(model, torch.randn(2, 3, 4, 4), schedule, rng=PerSampleRNG([1, 2, 3]))
