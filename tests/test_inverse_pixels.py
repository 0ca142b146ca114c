"""Pixel conditions on a real photo: super-resolution and inpainting by optimisation, priors, pixel guidance."""
import math

import pytest
import torch
import torch.nn.functional as F

from infd.diffusion.analytic import GaussianMixtureDenoiser
from infd.diffusion.sampling import SamplingSpec
from infd.inverse.conditions import ConditionTerms, MaskedPixels, Pixels
from infd.inverse.guided import solve_guided
from infd.inverse.optimize import OptimizeOptions, residual_grid, solve_optimize
from infd.metrics import psnr
from infd.renderers.coords import FractionalWindow
from infd.renderers.region import render_region
from infd.rendering.engine import render
from infd.rendering.sampling import sample_latents

from inverse_testing import load_photo, make_bundle


@pytest.fixture(scope="module")
def bundle():
    return make_bundle()


@pytest.fixture(scope="module")
def start(bundle):
    return sample_latents(bundle, [0], SamplingSpec(steps=4))  # (1, 3, 8, 8): the sample we start from


def test_super_resolution_matches_the_photo_at_low_resolution(bundle, start):
    low = load_photo(16)  # (3, 16, 16): the low-resolution input
    conditions = ConditionTerms([Pixels("photo", FractionalWindow.full(), low)])
    result = solve_optimize(bundle, conditions, start, OptimizeOptions(steps=100, optimize_field=True, field_lr=0.05))
    # rendered back at the input's resolution, through the tiled rendering engine: the input
    back = render(bundle.renderer, result.phi, (16, 16), tile=8)
    assert psnr(back, low[None]).item() >= 35
    assert result.losses["photo"].item() == pytest.approx(F.mse_loss(back, low[None]).item(), rel=1e-3, abs=1e-7)
    # rendered at 4x: an image of its own, not the bicubic upsampling of the input
    high = render(bundle.renderer, result.phi, (64, 64))
    bicubic = F.interpolate(low[None], scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    assert high.shape == (1, 3, 64, 64) and torch.isfinite(high).all()
    assert psnr(high.clamp(-1, 1), bicubic).item() < 30
    # the latent alone (no field residual) does not reach the photo in the same steps with this tiny model
    latent_only = solve_optimize(bundle, conditions, start, OptimizeOptions(steps=20))
    assert latent_only.losses["photo"].item() > 10 * result.losses["photo"].item()


def test_inpainting_keeps_the_known_pixels(bundle, start):
    photo = load_photo(32)
    known = torch.ones(1, 32, 32)
    known[:, 8:24, 10:26] = 0  # the hole to fill in
    conditions = ConditionTerms([MaskedPixels("photo", FractionalWindow.full(), photo, known)])
    result = solve_optimize(bundle, conditions, start, OptimizeOptions(steps=100, optimize_field=True, field_lr=0.05))
    out = render(bundle.renderer, result.phi, (32, 32))[0]
    keep = known.bool().expand(3, -1, -1)
    psnr_known = 10 * math.log10(4 / (out[keep] - photo[keep]).pow(2).mean().item())  # [-1, 1]: peak-to-peak 2
    psnr_hole = 10 * math.log10(4 / (out[~keep] - photo[~keep]).pow(2).mean().item())
    assert psnr_known >= 35
    assert psnr_hole < 25  # the hole is not fitted to the photo: the mask is honoured


def test_priors_pull_the_latent_where_they_should(bundle):
    """With the exact denoiser of two-mode data (modes at -2 and 2) as the backbone, the ``denoise`` prior
    moves latents towards the nearest mode, the ``gaussian`` prior towards zero."""
    exact = make_bundle()
    exact.backbone = GaussianMixtureDenoiser(exact.schedule, [-2.0, 2.0], [0.1, 0.1])
    nothing = ConditionTerms([Pixels("none", FractionalWindow.full(), torch.zeros(3, 4, 4), weight=0.0)])
    x = torch.full((2, 3, 8, 8), 1.5)
    x[1] = -1.0
    z = exact.to_latent_space(x)
    denoise = solve_optimize(exact, nothing, z, OptimizeOptions(steps=100, lr=0.02, prior="denoise", prior_weight=1.0))
    moved = exact.to_model_space(denoise.z).mean(dim=(1, 2, 3))
    assert moved[0] > 1.6 and moved[1] < -1.3, moved
    gaussian = solve_optimize(exact, nothing, z, OptimizeOptions(steps=20, lr=0.02, prior="gaussian", prior_weight=1.0))
    shrunk = exact.to_model_space(gaussian.z).abs().mean(dim=(1, 2, 3))
    assert (shrunk < x.abs().mean(dim=(1, 2, 3)) - 0.2).all(), shrunk


def test_optimisation_leaves_the_model_unchanged(bundle, start):
    before = {k: v.clone() for k, v in bundle.state_dict().items()}
    conditions = ConditionTerms([Pixels("photo", FractionalWindow(0.0, 0.0, 0.5, 0.5), load_photo(8))])
    solve_optimize(bundle, conditions, start, OptimizeOptions(steps=2, optimize_field=True, prior="denoise"))
    assert all(torch.equal(before[k], v) for k, v in bundle.state_dict().items())
    assert all(p.grad is None for p in bundle.parameters())


def test_pixel_guidance_during_sampling_moves_towards_the_photo(bundle):
    low = load_photo(16)
    conditions = ConditionTerms([Pixels("photo", FractionalWindow.full(), low)])
    plain = solve_guided(bundle, conditions, [0, 1], SamplingSpec(steps=8), condition_scale=0.0)
    guided = solve_guided(bundle, conditions, [0, 1], SamplingSpec(steps=8), condition_scale=1e6)  # the random tiny model needs a long step
    assert (guided.losses["photo"] < plain.losses["photo"] - 2e-3).all(), (plain.losses, guided.losses)
    with torch.no_grad():
        check = render_region(bundle.renderer, guided.phi, (16, 16))
    torch.testing.assert_close(guided.losses["photo"], (check - low).pow(2).mean(dim=(1, 2, 3)))


def test_residual_field_is_no_denser_than_the_conditions():
    """A residual finer than the constrained pixels would fit them with unseen cells (dots when zoomed)."""
    whole = ConditionTerms([Pixels("low", FractionalWindow.full(), torch.zeros(3, 16, 24))])
    assert residual_grid(whole, (64, 64)) == (16, 24)
    quarter = ConditionTerms([Pixels("a", FractionalWindow(0.0, 0.0, 0.5, 0.25), torch.zeros(3, 16, 16)),
                              Pixels("b", FractionalWindow.full(), torch.zeros(3, 8, 8))])
    assert residual_grid(quarter, (64, 48)) == (32, 48)  # 16 rows per half height, 16 columns per quarter width
    big = ConditionTerms([Pixels("big", FractionalWindow.full(), torch.zeros(3, 256, 256))])
    assert residual_grid(big, (64, 64)) == (64, 64)


def test_residual_field_upsampled_super_resolution_is_smooth_at_4x():
    bundle = make_bundle()
    low = F.interpolate(load_photo(32)[None], size=(8, 8), mode="area")[0]
    conditions = ConditionTerms([Pixels("photo", FractionalWindow.full(), low)])
    z0 = sample_latents(bundle, [0], SamplingSpec(steps=2))
    result = solve_optimize(bundle, conditions, z0, OptimizeOptions(steps=60, optimize_field=True, lr=0.0))
    delta = result.phi - bundle.decode(z0)
    # the residual varies smoothly: neighbouring field cells differ much less than the residual itself
    step = (delta[..., 1:, :] - delta[..., :-1, :]).abs().mean()
    assert step < 0.5 * delta.abs().mean()


def test_without_a_condition_scale_each_term_kind_takes_its_measured_default(bundle):
    low = load_photo(16)
    known = torch.ones(1, 16, 16)
    known[:, 4:12, 4:12] = 0
    terms = [Pixels("sr", FractionalWindow.full(), low), MaskedPixels("fill", FractionalWindow.full(), low, known)]
    conditions = ConditionTerms(terms)
    losses = {"sr": torch.tensor([0.5]), "fill": torch.tensor([0.25])}
    assert Pixels.default_scale == 10000 and MaskedPixels.default_scale == 3000
    assert conditions.total(losses, scaled=True).item() == 10000 * 0.5 + 3000 * 0.25
    single = ConditionTerms(terms[:1])
    default = solve_guided(bundle, single, [0], SamplingSpec(steps=4), condition_scale=None)
    explicit = solve_guided(bundle, single, [0], SamplingSpec(steps=4), condition_scale=Pixels.default_scale)
    torch.testing.assert_close(default.z, explicit.z, atol=1e-5, rtol=1e-4)
