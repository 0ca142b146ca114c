"""KID (unbiased MMD^2, cubic kernel), the memorisation ratio and real views in the FID/KID evaluation."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from eval_testing import TinyExtractor, tiny_bundle

from infd.checkpoint import save_model
from infd.eval import fid as fid_lib
from infd.eval.kid import kid, memorisation_ratio, mmd2_unbiased, nearest_distances, nearest_other_group_distances
from infd.eval.frechet import FeatureStats
from infd.eval.nearest import PAIRS_PER_ROW, nearest_samples, save_pairs
from infd.eval.photos import eval_data_config, load_photos
from infd.eval.report import format_sections
from infd.eval.run import EvalOptions, evaluate, evaluate_fid, memorisation_ratios
from infd.rendering.sinks import GRID_GAP_PX, quantize
from infd.diffusion.sampling import SamplingSpec
from test_eval_fid import shards  # noqa: F401 (the shard fixture)


def gauss(n, d=16, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_mmd_matches_the_kernel_sums_written_out():
    x, y = gauss(5, 3, seed=1), gauss(4, 3, 0.5, seed=2)
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd2_unbiased(x, y) == pytest.approx(float(xx + yy - 2 * xy), rel=1e-10)


def test_kid_is_unbiased_for_one_distribution_and_grows_with_a_shift():
    # the unbiased estimate averages to 0 over independent small sets of one distribution
    same = [kid(gauss(30, seed=2 * s), gauss(30, seed=2 * s + 1), subsets=1)[0] for s in range(60)]
    spread = torch.tensor(same).std().item()
    assert abs(sum(same) / len(same)) < 3 * spread / len(same) ** 0.5
    shifted = [kid(gauss(200, shift=m, seed=5), gauss(200, seed=6), subsets=10, subset_size=100)[0]
               for m in (0.0, 0.3, 1.0)]
    assert shifted[0] < shifted[1] < shifted[2]
    mean, std = kid(gauss(50, seed=1), gauss(80, seed=2), subsets=20, subset_size=40, seed=3)
    assert std > 0 and (mean, std) == kid(gauss(50, seed=1), gauss(80, seed=2), subsets=20, subset_size=40, seed=3)
    with pytest.raises(ValueError, match="different dimensions"):
        kid(gauss(5, 4), gauss(5, 3))


def test_memorisation_ratio_flags_copies_of_the_training_set():
    train, heldout = gauss(100, seed=1), gauss(40, seed=2)
    copies = train[:40] + 1e-3 * gauss(40, seed=3)
    assert memorisation_ratio(copies, train, heldout)["ratio"] < 0.01
    fresh = memorisation_ratio(gauss(40, seed=4), train, heldout)
    assert 0.7 < fresh["ratio"] < 1.4
    assert torch.allclose(nearest_distances(train[:3], train), torch.zeros(3, dtype=torch.float64))


def test_leave_one_photo_out_distance_ignores_the_views_of_the_same_photo():
    # 10 photos, 5 near-identical views each: a view's nearest other-photo view is far, its own photo's near
    centres = 3 * gauss(10, seed=1)
    train = centres.repeat_interleave(5, dim=0) + 1e-2 * gauss(50, seed=2)
    groups = torch.arange(50) // 5
    within = nearest_other_group_distances(train, groups)
    expected = torch.cdist(centres, centres).fill_diagonal_(float("inf")).min(dim=1).values.repeat_interleave(5)
    assert torch.allclose(within, expected, atol=0.1) and within.min() > 1.0
    # a sample copying a view sits far nearer than another photo does; a fresh photo about as near
    copies = memorisation_ratio(train[::5] + 1e-3 * gauss(10, seed=3), train, gauss(10, seed=4), groups)
    assert copies["ratio_within"] < 0.01 and copies["train_to_other_photos"] == pytest.approx(float(within.median()))
    fresh = memorisation_ratio(3 * gauss(10, seed=5), train, gauss(10, seed=4), groups)
    assert 0.5 < fresh["ratio_within"] < 2.0
    assert "ratio_within" not in memorisation_ratio(train[:3], train, train[3:6])
    with pytest.raises(ValueError, match="at least two groups"):
        nearest_other_group_distances(train, torch.zeros(50))


def test_the_nearest_samples_come_first_and_their_pairs_are_laid_out_in_reading_order(tmp_path):
    train = gauss(30, seed=1)
    samples = 5 + gauss(6, seed=2)  # far from every training vector
    samples[4] = train[7] + 1e-3  # a copy, the nearest
    samples[1] = train[2] + 0.3  # near, the second
    pairs = nearest_samples(samples, train, 3)
    assert [(r, t) for r, t, _ in pairs] == [(4, 7), (1, 2), pairs[2][:2]] and pairs[0][2] < pairs[1][2] < pairs[2][2]
    assert pairs[2][2] == pytest.approx(float(nearest_distances(samples, train).sort().values[2]))
    # 5 pairs, 2 a row: 3 rows, the last one's second pair white
    shade = lambda k: np.full((1, 4, 4, 3), k, np.uint8)  # noqa: E731
    grid = np.asarray(Image.open(save_pairs(np.concatenate([shade(10 * k) for k in range(5)]),
                                            np.concatenate([shade(10 * k + 5) for k in range(5)]),
                                            tmp_path / "pairs.png", per_row=2)))
    g, step = GRID_GAP_PX, 4 + GRID_GAP_PX
    assert grid.shape == (3 * 4 + 2 * g, 4 * 4 + 3 * g, 3)
    for k in range(5):
        y, x = (k // 2) * step, (k % 2) * 2 * step
        assert grid[y, x, 0] == 10 * k and grid[y, x + step, 0] == 10 * k + 5
    assert (grid[2 * step:, 2 * step:] == 255).all()
    with pytest.raises(ValueError, match="different shapes"):
        save_pairs(shade(0), np.concatenate([shade(0), shade(0)]), tmp_path / "bad.png")
    assert PAIRS_PER_ROW >= 1


def test_the_memorisation_ratio_among_renders_measures_against_the_reconstructions():
    def part(features):
        stats = FeatureStats(keep=True)
        stats.add(features)
        return SimpleNamespace(stats={fid_lib.FULL: stats}, count=len(features))

    train, held, samples = gauss(12, seed=1), 4 + gauss(6, seed=2), gauss(8, seed=3)
    fake = part(samples).stats
    photos, renders = memorisation_ratios(fake, part(train), part(held), {"train": part(train).stats,
                                                                          "heldout": part(held).stats}, real_views=3)
    assert photos.pop("num_heldout") == 6 and renders == pytest.approx(photos)  # renders that equal the photos
    # samples that copy the training views' reconstructions are memorisation among renders only
    copies = part(torch.cat([samples + 1e-4, train[8:]])).stats
    photos, renders = memorisation_ratios(fake, part(train), part(held), {"train": copies, "heldout": part(held).stats}, 3)
    assert renders["ratio"] < 0.01 < photos["ratio"]


def test_evaluation_reports_kid_real_views_and_memorisation(shards, tmp_path):  # noqa: F811
    bundle = save_model(tiny_bundle(), tmp_path / "bundle.safetensors")
    options = EvalOptions(sizes=(16, 32), scales=(2,), fid=True, num_samples=8, fid_sizes=(32,), patch=16,
                          sampling=SamplingSpec(steps=1), lpips=False, real_views=3, kid_subsets=5,
                          nearest_grid=str(tmp_path / "near" / "nearest.png"), nearest_count=3)
    results = evaluate(bundle, shards["val"], options, train_data=shards["train"], extractor=TinyExtractor())
    fid = results["fid"]
    # the picture: the 3 samples nearest to a training view, each beside that view
    near = fid["nearest"]
    assert near["file"] == "nearest.png" and len(near["seeds"]) == 3 and set(near["seeds"]) <= set(range(8))
    assert near["distance"] == sorted(near["distance"]) and all(0 <= p < 6 and 0 <= v < 3 for p, v in
                                                                 zip(near["train_photo"], near["train_view"]))
    assert near["ratio"][0] == pytest.approx(near["distance"][0] / fid["memorisation"]["heldout_to_train"])
    grid = np.asarray(Image.open(tmp_path / "near" / "nearest.png").convert("RGB"))
    S = fid["full_size"]
    seed = near["seeds"][0]
    expected = next(fid_lib.sample_batches(tiny_bundle(), [seed], fid_lib.FIDSettings(S, (32,), 16), options.sampling))
    assert np.array_equal(grid[:S, :S], quantize(expected[fid_lib.FULL])[0])  # the first pair's sample
    photo, view = near["train_photo"][0], near["train_view"][0]
    reals = list(fid_lib.real_batches(load_photos(eval_data_config(shards["train"], S)), fid_lib.FIDSettings(S, (32,), 16),
                                      eval_data_config(shards["train"], S), views=3))
    real_view = torch.cat([b[fid_lib.FULL] for b in reals])[3 * photo + view]
    assert np.array_equal(grid[:S, S + GRID_GAP_PX:2 * S + GRID_GAP_PX], quantize(real_view[None])[0])
    rec = fid["memorisation_reconstructed"]
    assert rec["ratio"] > 0 and rec["ratio_within"] > 0 and rec["sample_to_train"] != fid["memorisation"]["sample_to_train"]
    assert fid["num_real"] == 6 and fid["num_real_images"] == 18 and fid["real_views"] == 3
    assert isinstance(fid["kid"], float) and fid["kid_std"] >= 0 and list(fid["patch_kid"]) == ["32"]
    mem = fid["memorisation"]
    assert mem["num_heldout"] == 2 * 3 and mem["ratio"] > 0
    assert mem["ratio_within"] > 0 and mem["train_to_other_photos"] > 0
    refs = fid["references"]
    names = {"heldout", "heldout_reconstructed", "train_reconstructed"}
    assert set(refs["kid"]) == set(refs["fid"]) == names | {n + "_patch" for n in names}
    assert refs["counts"] == {"heldout": 6, "heldout_reconstructed": 6, "train_reconstructed": 18}
    for metric in ("kid", "fid"):
        values = refs[metric]
        assert values["train_reconstructed"] != values["heldout_reconstructed"] != values["heldout"]
        assert list(values["heldout_patch"]) == list(values["train_reconstructed_patch"]) == ["32"]
    assert fid["sampler_seconds_per_sample"] > 0
    # FID of the first 6 samples (the held-out count) is the FID of a 6-sample run
    first = fid["fid_first_n"]
    six = evaluate_fid(tiny_bundle(), shards["train"], replace(options, num_samples=6), extractor=TinyExtractor())
    assert first["count"] == 6 and first["fid"] == pytest.approx(six["fid"]) != fid["fid"]
    assert first["patch_fid"]["32"] == pytest.approx(six["patch_fid"]["32"])
    text = "\n".join(format_sections(results))
    assert f"`nearest.png`: the 3 samples nearest to a training view" in text and "Among renders" in text
    assert "| samples, the first 6 | 6 |" in text and "| the real views reconstructed by the autoencoder" in text
    plain = evaluate_fid(tiny_bundle(), shards["train"], EvalOptions(fid=True, num_samples=6, fid_sizes=(32,),
                         patch=16, sampling=SamplingSpec(steps=1), lpips=False), extractor=TinyExtractor())
    assert plain["num_real_images"] == 6 and plain["memorisation"] is None and plain["references"] is None
    assert plain["nearest"] is None and plain["memorisation_reconstructed"] is None
    with pytest.raises(ValueError, match="--real-views must be"):
        EvalOptions(fid=True, real_views=-1)


def test_compared_bundles_are_measured_by_the_same_protocol(shards, tmp_path, monkeypatch):  # noqa: F811
    from infd.eval import fid as fid_lib

    reconstructions = []
    original = fid_lib.reconstructed_batches
    monkeypatch.setattr(fid_lib, "reconstructed_batches", lambda *a, **k: reconstructions.append(1) or original(*a, **k))

    main, other = tiny_bundle(0), tiny_bundle(1)
    paths = [save_model(main, tmp_path / "main.safetensors"), save_model(other, tmp_path / "other.safetensors"),
             save_model(main, tmp_path / "same.safetensors")]
    options = EvalOptions(sizes=(16,), scales=(2,), fid=True, num_samples=6, fid_sizes=(32,), patch=16,
                          sampling=SamplingSpec(steps=1), lpips=False, kid_subsets=5)
    results = evaluate(paths[0], shards["val"], options, train_data=shards["train"], compare=paths[1:],
                       extractor=TinyExtractor())
    assert list(results["fid_compare"]) == ["other [clif]", "same [clif]"] and results["fid_label"] == "main [clif]"
    alone = evaluate_fid(other, shards["train"], options, extractor=TinyExtractor(), heldout=None)
    compared = results["fid_compare"]["other [clif]"]
    assert compared["fid"] == pytest.approx(alone["fid"]) and compared["kid"] == pytest.approx(alone["kid"])
    assert compared["fid"] != pytest.approx(results["fid"]["fid"])  # another prior: other samples
    same = results["fid_compare"]["same [clif]"]
    assert same["fid"] == results["fid"]["fid"] and same["memorisation"] == results["fid"]["memorisation"]
    floors, other_floors = results["fid"]["references"]["kid"], compared["references"]["kid"]
    assert floors == same["references"]["kid"] and floors["heldout"] == other_floors["heldout"]  # the same real sets
    assert floors["heldout_reconstructed"] != other_floors["heldout_reconstructed"]  # another autoencoder
    assert len(reconstructions) == 4  # held-out and real sets of two autoencoders: "same" reused main's
    table = [line for line in format_sections(results) if line.startswith("| FID, whole images")][-1]
    cells = [c.strip() for c in table.strip("|").split("|")]
    assert cells[-1] == "1.000" and float(cells[2]) / float(cells[1]) == pytest.approx(1 / float(cells[3]), rel=1e-2)


def test_a_sampling_curve_measures_each_spec_against_the_same_references(shards, tmp_path):  # noqa: F811
    bundle = save_model(tiny_bundle(), tmp_path / "bundle.safetensors")
    curve = (SamplingSpec().with_text("ddim:2"), SamplingSpec().with_text("dpmpp_2m:2:0.5"),
             SamplingSpec().with_text("ddim:2:1:0.5"))
    options = EvalOptions(sizes=(16,), scales=(2,), fid=True, num_samples=6, fid_sizes=(32,), patch=16,
                          sampling=SamplingSpec("ddim", 1), sampling_curve=curve, lpips=False, kid_subsets=5)
    results = evaluate(bundle, shards["val"], options, train_data=shards["train"], extractor=TinyExtractor())
    rows = results["sampling_curve"]
    assert rows[0] is results["fid"]
    assert [(r["sampler"], r["steps"], r["cfg_scale"], r["eta"]) for r in rows] == [
        ("ddim", 1, 1.0, None), ("ddim", 2, 1.0, None), ("dpmpp_2m", 2, 0.5, None), ("ddim", 2, 1.0, 0.5)]
    assert rows[1]["kid"] != rows[0]["kid"] and rows[1]["references"] == rows[0]["references"]
    assert rows[3]["kid"] != rows[1]["kid"]  # eta 0.5, not the bundle's (0 or 1), samples differently
    assert all(r["sampler_seconds_per_sample"] > 0 for r in rows)
    table = [line for line in format_sections(results) if line.startswith("| ddim |") or line.startswith("| dpmpp_2m |")]
    assert len(table) == 3 and table[2].startswith("| dpmpp_2m | 2 | 0.5 |")
    assert any(line.startswith("| ddim (eta 0.5) | 2 | 1 |") for line in format_sections(results))
    assert options.sampling_curve[1].class_label is None
    with pytest.raises(ValueError, match="SAMPLER:STEPS"):
        SamplingSpec().with_text("ddim")
    with pytest.raises(ValueError, match="unknown sampler"):
        SamplingSpec().with_text("euler:20")
    with pytest.raises(ValueError, match="eta is DDIM's"):
        SamplingSpec().with_text("dpmpp_2m:20:1:1")
    with pytest.raises(ValueError, match="eta must be"):
        SamplingSpec().with_text("ddim:20:1:-1")
    with pytest.raises(ValueError, match="needs --fid"):
        EvalOptions(sampling_curve=curve)
