"""Joint denoising of latent canvases in windows (infd.diffusion.windows), on exact and tiny denoisers."""
import math

import pytest
import torch

from diffusion_testing import perturbed, tiny_unet
from infd.diffusion.analytic import GaussianMixtureDenoiser
from infd.diffusion.guidance import ClassifierFreeGuidance
from infd.diffusion.noise import PerSampleRNG
from infd.diffusion.samplers import SamplerConfig, sample
from infd.diffusion.schedules import make_schedule
from infd.diffusion.sampling import SamplingSpec
from infd.diffusion.windows import JointDenoiser, LabelBox, WindowSpec, plan_windows, shifted_spans, window_starts
from inverse_testing import make_bundle

SAMPLERS = [SamplerConfig("ddim", 10, eta=0.0), SamplerConfig("ddim", 10, eta=1.0), SamplerConfig("ddpm", 10),
            SamplerConfig("dpmpp_2m", 10)]
MODES = [WindowSpec(mode="overlap", stride=4), WindowSpec(mode="shifted", multiple=2)]


def gmm(prediction="eps"):
    schedule = make_schedule(kind="scaled_linear")
    return schedule, GaussianMixtureDenoiser(schedule, [-2.0, 2.0], [0.3, 0.3], prediction=prediction)


def run(model, shape, config, seeds=(0, 1), cond=None, **kwargs):
    rng = PerSampleRNG(list(seeds))
    assert len(seeds) == shape[0]
    return sample(model, rng.randn(shape[1:]), kwargs.pop("schedule"), config, cond=cond, rng=rng, **kwargs)


def test_window_plans_cover_the_canvas():
    assert window_starts(8, 8, 4) == [0]
    assert window_starts(20, 8, 4) == [0, 4, 8, 12]
    assert window_starts(21, 8, 6) == [0, 6, 12, 13]  # the last window is flush with the edge
    with pytest.raises(ValueError, match="smaller than the window"):
        window_starts(7, 8, 4)
    for offset in range(0, 8, 2):
        spans = shifted_spans(20, 8, offset)
        assert sum(n for _, n in spans) == 20 and spans[0][0] == 0  # a partition: nothing computed twice
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    seen = set()
    for t in range(0, 1000, 50):  # the grid moves with t
        cover = torch.zeros(16, 24, dtype=torch.int)
        wins = plan_windows((16, 24), (8, 8), WindowSpec(mode="shifted", multiple=2), t)
        for top, left, h, w in wins:
            assert h % 2 == 0 and w % 2 == 0 and h <= 8 and w <= 8
            cover[top:top + h, left:left + w] += 1
        assert bool((cover == 1).all())
        seen.add((wins[0][2], wins[0][3]))
    assert len(seen) > 3
    with pytest.raises(ValueError, match="multiples of 2"):
        plan_windows((15, 24), (8, 8), WindowSpec(mode="shifted", multiple=2), 0)


@pytest.mark.parametrize("spec", MODES, ids=["overlap", "shifted"])
@pytest.mark.parametrize("config", SAMPLERS, ids=["ddim", "ddim-eta1", "ddpm", "dpmpp"])
def test_a_canvas_of_the_trained_size_is_plain_sampling_bit_for_bit(config, spec):
    schedule, model = gmm()
    unet = perturbed(tiny_unet(num_classes=2))
    for denoiser, cond in ((model, None), (unet, torch.tensor([0, 1]))):
        plain = run(denoiser, (2, 1 if denoiser is model else 3, 8, 8), config, cond=cond, schedule=schedule)
        joint = run(JointDenoiser(denoiser, (8, 8), spec), tuple(plain.shape), config, cond=cond, schedule=schedule)
        assert torch.equal(plain, joint)


@pytest.mark.parametrize("spec", MODES, ids=["overlap", "shifted"])
@pytest.mark.parametrize("config", SAMPLERS, ids=["ddim", "ddim-eta1", "ddpm", "dpmpp"])
def test_on_the_exact_denoiser_a_large_canvas_matches_sampling_it_whole(config, spec):
    """The mixture denoiser is per scalar, so every window predicts what the whole canvas would: windows
    must change nothing (this fails if a window is misplaced, counted twice or its noise misaligned)."""
    schedule, model = gmm()
    whole = run(model, (2, 1, 16, 24), config, schedule=schedule)
    joint = run(JointDenoiser(model, (8, 8), spec), (2, 1, 16, 24), config, schedule=schedule)
    torch.testing.assert_close(joint, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", MODES, ids=["overlap", "shifted"])
def test_results_do_not_depend_on_the_window_batch(spec):
    schedule = make_schedule(kind="scaled_linear")
    unet = perturbed(tiny_unet(num_classes=2))
    config = SamplerConfig("ddim", 8, eta=1.0)
    outs = []
    for batch in (1, 3, 64):
        denoiser = JointDenoiser(unet, (8, 8), WindowSpec(stride=spec.stride, batch=batch, mode=spec.mode,
                                                          multiple=spec.multiple))
        outs.append(run(denoiser, (2, 3, 16, 20), config, cond=torch.tensor([1, 0]), schedule=schedule))
    for other in outs[1:]:  # a random UNet's samples reach |x| ~ 100: float rounding of batched convs
        torch.testing.assert_close(other, outs[0], atol=1e-4, rtol=1e-5)
    again = run(JointDenoiser(unet, (8, 8), spec), (2, 3, 16, 20), config, cond=torch.tensor([1, 0]), schedule=schedule)
    one = run(JointDenoiser(unet, (8, 8), spec), (1, 3, 16, 20), config, seeds=(0,), cond=torch.tensor([1]),
              schedule=schedule)
    assert torch.equal(again[:1], run(JointDenoiser(unet, (8, 8), spec), (2, 3, 16, 20), config,
                                      cond=torch.tensor([1, 0]), schedule=schedule)[:1])  # deterministic
    torch.testing.assert_close(one, again[:1], atol=1e-4, rtol=1e-5)  # a seed does not depend on its batch


def _overlap_disagreement(estimates: dict, size: int = 8) -> float:
    """Largest difference between two windows' estimates where the windows overlap."""
    worst = 0.0
    for (t1, l1), e1 in estimates.items():
        for (t2, l2), e2 in estimates.items():
            r0, r1, c0, c1 = max(t1, t2), min(t1, t2) + size, max(l1, l2), min(l1, l2) + size
            if (t1, l1) < (t2, l2) and r0 < r1 and c0 < c1:
                d = e1[..., r0 - t1:r1 - t1, c0 - l1:c1 - l1] - e2[..., r0 - t2:r1 - t2, c0 - l2:c1 - l2]
                worst = max(worst, float(d.abs().max()))
    return worst


def test_overlapping_windows_agree_at_the_last_step():
    """A non-local denoiser (a random tiny UNet): at the last step, the x0 estimates of overlapping windows
    differ by little where they overlap (the canvas is one state, reconciled at every step), while the
    same windows sampled on their own from the same noise disagree by the scale of the samples."""
    schedule = make_schedule(kind="scaled_linear")
    unet = perturbed(tiny_unet(), scale=0.02)
    config = SamplerConfig("ddim", 10, eta=0.0)
    spec = WindowSpec(mode="overlap", stride=4)
    states = []
    joint = run(JointDenoiser(unet, (8, 8), spec), (2, 3, 16, 16), config, schedule=schedule,
                callback=lambda i, t, x, x0: states.append(x))
    x_last, t_last = states[-2], schedule.spaced_timesteps(10, "uniform")[-1]
    a = float(schedule.alphas_cumprod[t_last])
    wins = plan_windows((16, 16), (8, 8), spec)
    x0, alone = {}, {}
    noise = PerSampleRNG([0, 1]).randn((3, 16, 16))
    with torch.no_grad():
        for top, left, h, w in wins:
            x_w = x_last[..., top:top + h, left:left + w]
            eps = unet(x_w, torch.full((2,), t_last), None)
            x0[(top, left)] = (x_w - math.sqrt(1 - a) * eps) / math.sqrt(a)
            alone[(top, left)] = sample(unet, noise[..., top:top + h, left:left + w], schedule, config)
    spread = float(joint.std())
    worst, independent = _overlap_disagreement(x0), _overlap_disagreement(alone)
    assert worst < 0.02 * spread and independent > 10 * worst, (worst, independent, spread)


def test_label_boxes_land_in_their_boxes():
    """The labelled mixture: class 0 is N(-2, 0.3^2), class 1 N(2, 0.3^2); the left of the canvas asks for
    class 0, the right for 1, with classifier-free guidance on (per window, inside the average)."""
    schedule, model = gmm()
    boxes = (LabelBox(0, 0, 16, 12, 0), LabelBox(0, 12, 16, 24, 1))
    for spec in MODES:
        for scale in (1.0, 3.0):
            inner = ClassifierFreeGuidance(model, scale, model.null_cond) if scale != 1 else model
            joint = JointDenoiser(inner, (8, 8), spec, boxes, null_cond=model.null_cond)
            x = run(joint, (2, 1, 16, 24), SamplerConfig("ddim", 20, eta=0.0), schedule=schedule)
            left, right = float(x[..., :10].mean()), float(x[..., 14:].mean())
            if scale == 1:
                assert abs(left + 2) < 0.1 and abs(right - 2) < 0.1, (left, right)
            else:  # guidance pushes past the class mean
                assert left < -2 and right > 2 and bool((x[..., :10] < 0).all() and (x[..., 14:] > 0).all())
    free = run(model, (2, 1, 16, 24), SamplerConfig("ddim", 20, eta=0.0), schedule=schedule)
    assert float((free[..., :10] > 0).float().mean()) > 0.3  # unlabelled, both classes appear everywhere


def test_a_box_with_the_base_label_changes_nothing():
    schedule, model = gmm()
    cond = torch.tensor([1, 1])
    config = SamplerConfig("ddim", 10, eta=0.0)
    plain = run(JointDenoiser(model, (8, 8), MODES[0]), (2, 1, 16, 16), config, cond=cond, schedule=schedule)
    boxed = run(JointDenoiser(model, (8, 8), MODES[0], (LabelBox(2, 2, 9, 9, 1),), null_cond=model.null_cond),
                (2, 1, 16, 16), config, cond=cond, schedule=schedule)
    torch.testing.assert_close(boxed, plain, atol=1e-6, rtol=0)


def test_the_bundle_samples_canvases_and_counts_its_windows():
    bundle = make_bundle()
    spec = SamplingSpec("ddim", 4, cfg_scale=2.0, class_label=1)
    rng = PerSampleRNG([0])
    plain = bundle.sample_latents(rng.randn((3, 8, 8)), spec, rng=rng)
    rng = PerSampleRNG([0])
    calls = []
    same = bundle.sample_latents(rng.randn((3, 8, 8)), spec, rng=rng, windows=WindowSpec(), on_windows=calls.append)
    torch.testing.assert_close(same, plain, atol=1e-6, rtol=0)  # guidance moves inside the windows: same result
    assert sum(calls) == bundle.joint_windows_total((8, 8), spec) == 4
    for mode in ("shifted", "overlap"):
        calls = []
        rng = PerSampleRNG([0])
        boxes = (LabelBox(0, 0, 8, 6, 2),)
        z = bundle.sample_latents(rng.randn((3, 8, 16)), spec, rng=rng, windows=WindowSpec(mode=mode), boxes=boxes,
                                  on_windows=calls.append)
        assert z.shape == (1, 3, 8, 16) and torch.isfinite(z).all()
        assert sum(calls) == bundle.joint_windows_total((8, 16), spec, WindowSpec(mode=mode), boxes)
    with pytest.raises(ValueError, match="not in 0..3"):
        bundle.sample_latents(torch.zeros(1, 3, 8, 16), spec, boxes=(LabelBox(0, 0, 8, 8, 7),))


class WindowMean(torch.nn.Module):
    """A stand-in backbone whose prediction is constant per window (the window's mean input): the average
    of such windows has a step wherever a window starts or ends, unless the blend fades them in."""

    def forward(self, x, t, cond=None):
        return x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x)


def test_tent_blend_fades_windows_in_and_keeps_what_one_window_covers():
    from infd.diffusion.windows import tent_weights

    x = torch.randn(1, 2, 8, 40, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([5])
    jumps = {}
    for blend in ("uniform", "tent"):
        out = JointDenoiser(WindowMean(), (8, 8), WindowSpec(mode="overlap", stride=4, blend=blend))(x, t)
        jumps[blend] = out[0, 0, 0].diff().abs().max().item()
        torch.testing.assert_close(out[..., :4], WindowMean()(x[..., :8], t)[..., :4])  # one window there: its own
    assert jumps["tent"] < 0.5 * jumps["uniform"], jumps
    assert tent_weights(0, 8, 40).tolist() == [4, 4, 4, 4, 4, 3, 2, 1]  # flat towards the canvas edge
    assert tent_weights(4, 8, 40).tolist() == [1, 2, 3, 4, 4, 3, 2, 1]
    assert tent_weights(0, 8, 8).tolist() == [4] * 8  # a window spanning the axis: flat
    with pytest.raises(ValueError, match="window blend must be uniform or tent"):
        WindowSpec(blend="gauss")
