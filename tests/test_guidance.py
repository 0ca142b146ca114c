"""Classifier-free guidance wrapper and condition dropout."""
import pytest
import torch

from diffusion_testing import perturbed, tiny_unet, tiny_uvit
from infd.diffusion.guidance import ClassifierFreeGuidance, drop_condition, drop_labels
from infd.diffusion.noise import PerSampleRNG


@pytest.mark.parametrize("builder", [tiny_unet, tiny_uvit])
def test_guidance_scales_zero_and_one_are_the_plain_models(builder):
    model = perturbed(builder(num_classes=4))
    x, t, y = torch.randn(3, 3, 8, 8), torch.tensor([10, 400, 900]), torch.tensor([0, 1, 3])
    with torch.no_grad():
        cond = model(x, t, y)
        uncond = model(x, t, torch.full_like(y, 4))
        guided = {w: ClassifierFreeGuidance(model, w)(x, t, y) for w in (0.0, 1.0, 3.0)}
    assert (cond - uncond).abs().max() > 1e-3
    torch.testing.assert_close(guided[0.0], uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided[1.0], cond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided[3.0], uncond + 3.0 * (cond - uncond), atol=1e-4, rtol=1e-4)


def test_guidance_with_a_text_context_and_an_explicit_null():
    model = perturbed(tiny_unet(context_dim=8, num_classes=2))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([100, 200])
    cond = {"y": torch.tensor([0, 1]), "context": torch.randn(2, 5, 8)}
    null = {"y": torch.tensor([2]), "context": torch.zeros(1, 5, 8)}  # batch 1: broadcast
    with torch.no_grad():
        c = model(x, t, cond)
        u = model(x, t, {"y": torch.tensor([2, 2]), "context": torch.zeros(2, 5, 8)})
        guided = ClassifierFreeGuidance(model, 2.5, null_cond=null)(x, t, cond)
        by_callable = ClassifierFreeGuidance(model, 2.5, null_cond=lambda c: {
            "y": torch.full_like(c["y"], 2), "context": torch.zeros_like(c["context"])})(x, t, cond)
    torch.testing.assert_close(guided, u + 2.5 * (c - u), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(by_callable, guided, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="null"):
        ClassifierFreeGuidance(model, 2.0)(x, t, cond)  # no generic null for a text context


def test_guidance_without_a_condition_is_the_unconditional_model():
    model = perturbed(tiny_uvit(num_classes=3))
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    with torch.no_grad():
        torch.testing.assert_close(ClassifierFreeGuidance(model, 4.0)(x, t), model(x, t))


def test_drop_labels_rate_and_extremes():
    labels = torch.randint(0, 10, (20_000,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(drop_labels(labels, 10, p=0.0), labels)
    assert bool((drop_labels(labels, 10, p=1.0) == 10).all())
    dropped = drop_labels(labels, 10, p=0.1, rng=torch.Generator().manual_seed(1))
    changed = dropped != labels
    assert bool((dropped[changed] == 10).all())
    assert (dropped == 10).float().mean().item() == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ValueError, match="probability"):
        drop_labels(labels, 10, p=1.5)


def test_drop_condition_on_a_dict_is_per_sample_and_seeded():
    cond = {"y": torch.arange(6), "context": torch.randn(6, 4, 8)}
    null = {"y": torch.tensor([9]), "context": torch.zeros(1, 4, 8)}
    out = drop_condition(cond, null, p=0.5, rng=PerSampleRNG(range(6)))
    dropped = out["y"] == 9
    assert 0 < int(dropped.sum()) < 6
    assert bool((out["context"][dropped] == 0).all())
    torch.testing.assert_close(out["context"][~dropped], cond["context"][~dropped])
    alone = [drop_condition({k: v[i:i + 1] for k, v in cond.items()}, null, 0.5, PerSampleRNG([i]))["y"]
             for i in range(6)]
    assert torch.equal(torch.cat(alone), out["y"])
