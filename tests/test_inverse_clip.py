"""CLIP text conditions: the adapter loads a tiny random CLIPModel from disk, and guided sampling follows prompts."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from infd.diffusion.sampling import SamplingSpec  # noqa: E402
from infd.inverse.clip import ClipError, load_clip  # noqa: E402
from infd.inverse.conditions import ClipText, ConditionTerms  # noqa: E402
from infd.inverse.guided import solve_guided  # noqa: E402
from infd.renderers.coords import FractionalWindow  # noqa: E402
from infd.renderers.region import render_region  # noqa: E402

from inverse_testing import make_bundle, save_tiny_clip  # noqa: E402


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_clip(clip_dir)


def test_adapter_embeds_text_and_images(clip):
    text = clip.encode_text(["a red apple", "a blue sky", "a red apple"])
    assert text.shape == (3, 16)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(text[0], text[2])
    assert not torch.allclose(text[0], text[1])

    images = torch.rand(2, 3, 48, 40) * 2 - 1
    whole = clip.encode_images(images)
    assert whole.shape == (2, 1, 16)
    torch.testing.assert_close(whole.norm(dim=-1), torch.ones(2, 1))
    # the whole-image embedding is CLIP's own, on the resized image with CLIP's mean/std normalisation
    pixels = F.interpolate(images, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = clip.model.get_image_features(pixel_values=((pixels + 1) / 2 - mean) / std)
    expected = F.normalize(out if isinstance(out, torch.Tensor) else out.pooler_output, dim=-1)
    torch.testing.assert_close(whole[:, 0], expected, atol=1e-5, rtol=1e-5)

    cuts = clip.encode_images(images, cutouts=4, generator=torch.Generator().manual_seed(1))
    again = clip.encode_images(images, cutouts=4, generator=torch.Generator().manual_seed(1))
    assert cuts.shape == (2, 4, 16)
    torch.testing.assert_close(cuts, again)
    assert not torch.allclose(cuts[:, 0], cuts[:, 1])  # different crops

    images.requires_grad_(True)
    clip.encode_images(images, cutouts=2)[..., 0].sum().backward()
    assert images.grad.abs().sum() > 0 and not any(p.requires_grad for p in clip.parameters())


@pytest.mark.parametrize("case", ["none", "missing", "empty"])
def test_missing_weights_say_how_to_provide_them(tmp_path, case):
    path = {"none": None, "missing": tmp_path / "nowhere", "empty": tmp_path}[case]
    with pytest.raises(ClipError) as info:
        load_clip(path)
    text = str(info.value)
    assert "\n" not in text and "save_pretrained" in text and "--clip DIR" in text


def test_guided_sampling_follows_each_prompt_in_its_box(clip):
    # A randomly initialised attention layer averages over the whole 8x8 latent almost uniformly, which
    # would spread any change everywhere; locality is what this test checks, so the decoder has no mid
    # attention here (the backbone keeps its attention).
    bundle = make_bundle(ae={"mid_attention": False})
    apple, sky = FractionalWindow(0.0, 0.0, 0.5, 0.5), FractionalWindow(0.5, 0.5, 1.0, 1.0)
    conditions = ConditionTerms([ClipText("apple", apple, (32, 32), clip, "a red apple"),
                                 ClipText("sky", sky, (32, 32), clip, "a blue sky")])
    seeds = [0, 1, 2]
    plain = solve_guided(bundle, conditions, seeds, SamplingSpec(steps=10), condition_scale=0.0)
    guided = solve_guided(bundle, conditions, seeds, SamplingSpec(steps=10), condition_scale=1e5)  # the random tiny model needs a long step
    with torch.no_grad():
        for term in conditions:
            before = term.similarity(term.render(bundle.renderer, plain.phi))
            after = term.similarity(term.render(bundle.renderer, guided.phi))
            assert (after > before + 1e-3).all(), (term.name, before, after)
            torch.testing.assert_close(guided.losses[term.name], 1 - after)
        change = (render_region(bundle.renderer, guided.phi, (64, 64))
                  - render_region(bundle.renderer, plain.phi, (64, 64))).abs().mean(dim=1)  # (B, 64, 64)
    boxes = torch.zeros(64, 64, dtype=torch.bool)
    boxes[:32, :32] = boxes[32:, 32:] = True
    inside, outside = change[:, boxes].mean(dim=1), change[:, ~boxes].mean(dim=1)
    assert (inside > 1.2 * outside).all(), (inside, outside)


def test_unguided_solve_is_the_plain_sample_of_the_seed(clip):
    from infd.rendering.sampling import sample_latents

    bundle = make_bundle()
    conditions = ConditionTerms([ClipText("apple", FractionalWindow.full(), (32, 32), clip, "a red apple")])
    plain = solve_guided(bundle, conditions, [4], SamplingSpec("ddim", steps=5), condition_scale=0.0)
    expected = sample_latents(bundle, [4], SamplingSpec("ddim", steps=5))
    torch.testing.assert_close(plain.z, expected, atol=1e-5, rtol=1e-5)
