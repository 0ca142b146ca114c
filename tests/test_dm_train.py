"""Stage-2 training on a tiny latent cache: the loss goes down, resuming is bit-exact, the exported
bundle holds the EMA weights with the cache's normalisation, and class labels are dropped for CFG."""
import pytest
import torch

from infd.data.latents import LatentCacheError, load_stats
from infd.checkpoint import load_model, read_checkpoint
from infd.config import from_dict
from infd.diffusion.bundle import LatentDiffusion
from infd.diffusion.config import build_backbone, build_schedule
from infd.diffusion.objective import diffusion_loss
from infd.training.dm_loop import DMTrainConfig, _labels, train_diffusion
from infd.models.autoencoder import NeuralFieldAutoencoder
from infd.training.run import init_weights
from infd.training.run_dir import read_log
from infd.training.state import CheckpointIO, load_state

from dm_testing import make_cache


def tiny_dm_config(cache: dict, run_dir, **overrides) -> dict:
    config = {
        "run_dir": str(run_dir), "autoencoder": cache["autoencoder"],
        "diffusion": {"backbone": "unet",
                      "model": {"channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_ds": [2],
                                "head_channels": 8, "norm_groups": 8, "scale_shift_norm": True},
                      "schedule": {"kind": "cosine"}, "objective": {"prediction": "v"},
                      "sampler": {"name": "ddim", "steps": 4, "eta": 0.0}},
        "latents": {"urls": cache["latents"], "batch_size": 4, "shuffle_buffer": 8},
        "optimizer": {"name": "adamw", "lr": 2e-3, "betas": [0.9, 0.999]},
        "ema_decay": 0.9, "max_steps": 8, "log_every": 1, "sample_every": 0, "checkpoint_every": 4,
        "keep_checkpoints": 5, "deterministic": True, "exact_resume": True,
        "sample_sizes": [16, 32], "num_sample_images": 2, "sample_steps": 2,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("dm"))


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    """A 150-step run with sample grids and checkpoints every 75 steps."""
    config = from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path_factory.mktemp("run") / "run", max_steps=150,
                                                     sample_every=75, checkpoint_every=75))
    return config, train_diffusion(config, progress=False)


def fixed_eval_loss(model, config: DMTrainConfig, stats) -> float:
    """The objective on every cached latent at fixed timesteps and noise (independent of the run's RNG)."""
    from infd.data.latents import make_latent_loader

    latents = dict(config.latents.__dict__, resampled=False, shuffle_buffer=0, batch_size=64)
    z = torch.cat([b["z"] for b in make_latent_loader(type(config.latents)(**latents))])
    shift, scale = (torch.tensor(v).view(1, -1, 1, 1) for v in stats.shift_scale(config.latent_norm))
    x0 = ((z - shift) / scale).repeat(4, 1, 1, 1)  # (4N, C, h, w)
    g = torch.Generator().manual_seed(123)
    t = torch.linspace(50, 949, x0.shape[0]).long()
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        return diffusion_loss(model.eval(), x0, build_schedule(config.diffusion), t=t, noise=noise,
                              prediction=config.diffusion.objective.prediction).mean().item()


def test_training_lowers_the_loss_and_writes_the_run_dir(trained, cache):
    config, result = trained
    stats = load_stats(config.latents.stats_path())
    torch.manual_seed(1)
    before = fixed_eval_loss(build_backbone(config.diffusion), config, stats)
    after = fixed_eval_loss(result.model, config, stats)
    assert after < 0.8 * before, (before, after)  # about 0.69x; an untrained model stays at 1.0x
    rows = read_log(result.run_dir)
    assert [r["step"] for r in rows] == list(range(1, 151))
    first, last = (sum(r["loss"] for r in part) / len(part) for part in (rows[:10], rows[-10:]))
    assert last < 0.85 * first, (first, last)  # about 0.73x
    assert {"loss", "steps_per_s", "lr", "grad_norm"} <= rows[0].keys()
    for name in ("config.yaml", "bundle.safetensors", "images/samples-00000075.png", "images/samples-00000150.png",
                 "checkpoints/state-00000150.pt"):
        assert (result.run_dir / name).exists(), name


def test_bundle_holds_ema_weights_autoencoder_and_normalisation(trained, cache):
    config, result = trained
    bundle = load_model(result.run_dir / "bundle.safetensors")
    assert isinstance(bundle, LatentDiffusion)
    shift, scale = load_stats(config.latents.stats_path()).shift_scale("per_channel")
    assert bundle.config.latent_shift == pytest.approx(shift) and bundle.config.latent_scale == pytest.approx(scale)
    ema = load_state(result.run_dir / "checkpoints" / "state-00000150.pt")["ema"]
    raw = load_state(result.run_dir / "checkpoints" / "state-00000150.pt")["model"]
    for key, value in ema.items():
        assert torch.equal(bundle.backbone.state_dict()[key], value), key
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)  # the bundle holds the EMA copy, not the raw weights
    ae_state, _ = read_checkpoint(cache["autoencoder"])
    for key, value in ae_state.items():
        assert torch.equal(bundle.autoencoder.state_dict()[key], value), key


def test_resume_is_bit_exact(cache, tmp_path):
    straight = train_diffusion(from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "straight")), progress=False)
    half = from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "resumed", max_steps=4))
    assert train_diffusion(half, progress=False).step == 4
    resumed = train_diffusion(from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "resumed")), progress=False)
    assert resumed.step == 8
    a = load_state(straight.run_dir / "checkpoints" / "state-00000008.pt")
    b = load_state(resumed.run_dir / "checkpoints" / "state-00000008.pt")
    assert a["samples_seen"] == b["samples_seen"] == 32
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    c = load_state(resumed.run_dir / "checkpoints" / "state-00000004.pt")
    assert any(not torch.equal(c["model"][k], b["model"][k]) for k in c["model"])  # it did train after resuming


def test_lr_cooldown_takes_the_last_steps_down_linearly(cache, tmp_path):
    config = from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "run", lr_cooldown_steps=4))
    train_diffusion(config, progress=False)
    lrs = [row["lr"] for row in read_log(config.run_dir)]
    assert lrs == pytest.approx([2e-3 * f for f in (1, 1, 1, 1, 1, 0.75, 0.5, 0.25)])  # the lr of steps 1..8
    with pytest.raises(ValueError, match="lr_cooldown_steps"):
        from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "bad", lr_cooldown_steps=-1))


def test_init_from_a_bundle_continues_its_step(cache, tmp_path):
    first = train_diffusion(from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "a", max_steps=4)), progress=False)
    bundle = first.run_dir / "bundle.safetensors"
    assert read_checkpoint(bundle)[1]["step"] == "4"
    second = train_diffusion(from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "b", max_steps=6)),
                             progress=False, init_from=str(bundle))
    assert second.step == 6
    assert [r["step"] for r in read_log(tmp_path / "b") if "loss" in r] == [5, 6]  # from the bundle's step 4
    # a stage-1 run taking the bundle's autoencoder: the bundle's step is stage 2's, so it starts at 0
    loaded = load_model(bundle)
    autoencoder = NeuralFieldAutoencoder(loaded.config.autoencoder)
    assert init_weights(CheckpointIO(tmp_path / "c", model=autoencoder), bundle) == 0
    for key, value in loaded.autoencoder.state_dict().items():
        assert torch.equal(autoencoder.state_dict()[key], value), key


def test_class_conditional_training_and_label_dropout(cache, tmp_path):
    config = tiny_dm_config(cache, tmp_path / "cond", max_steps=3, checkpoint_every=3)
    config["diffusion"]["model"]["num_classes"] = 3
    result = train_diffusion(from_dict(DMTrainConfig, config), progress=False)
    assert load_model(result.run_dir / "bundle.safetensors").num_classes == 3
    batch = {"label": torch.tensor([0, 1, 2, 1] * 50)}
    torch.manual_seed(0)
    dropped = _labels(batch, 3, 0.25, "cpu")
    null = dropped == 3
    assert 0.15 < null.float().mean() < 0.35 and torch.equal(dropped[~null], batch["label"][~null])
    assert _labels(batch, None, 0.25, "cpu") is None
    with pytest.raises(LatentCacheError, match="labels must be in 0..1"):
        _labels(batch, 2, 0.0, "cpu")


def test_conditional_backbone_needs_labelled_latents(tmp_path):
    unlabelled = make_cache(tmp_path / "nolabels", count=2, labels=False, flip=False)
    config = tiny_dm_config(unlabelled, tmp_path / "run")
    config["diffusion"]["model"]["num_classes"] = 3
    with pytest.raises(LatentCacheError, match="only 0 of 2 cached latents have a label"):
        train_diffusion(from_dict(DMTrainConfig, config), progress=False)


def test_max_minutes_stops_with_a_checkpoint_and_a_grid(cache, tmp_path, monkeypatch):
    import time
    import types

    import infd.training.run as run

    calls = []  # a clock that advances 30 s per reading: the deadline (72 s later) passes after 2 steps
    clock = types.SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: 30.0 * (calls.append(1) or len(calls)))
    monkeypatch.setattr(run, "time", clock)
    result = train_diffusion(from_dict(DMTrainConfig, tiny_dm_config(cache, tmp_path / "run", max_steps=100,
                                                                      max_minutes=1.2, sample_every=50)), progress=False)
    assert result.step == 2
    assert load_state(tmp_path / "run" / "checkpoints" / "state-00000002.pt")["step"] == 2
    assert (tmp_path / "run" / "bundle.safetensors").exists()
    assert (tmp_path / "run" / "images" / "samples-00000002.png").exists()  # the last grid of a timed run
