"""What both training loops share: config checks, ``CheckpointIO`` (parts saved and restored together,
a disabled part stored as ``{}``, the newest ``keep`` files kept) and the resumed data stream."""
import random

import pytest
import torch

from infd.config import ConfigError, from_dict
from infd.training.ae_loop import AETrainConfig
from infd.training.dm_loop import DMTrainConfig
from infd.training.state import CheckpointIO, list_states, load_state
from infd.training.stream import resumed_batches


@pytest.mark.parametrize("config_cls", [AETrainConfig, DMTrainConfig])
@pytest.mark.parametrize("key, value, message", [
    ("max_steps", 0, "max_steps must be >= 1"), ("log_every", 0, "log_every must be >= 1"),
    ("checkpoint_every", -1, "checkpoint_every must be >= 1"), ("max_minutes", 0, "max_minutes must be positive"),
    ("ema_decay", 1.0, r"ema_decay must be in \[0, 1\)"),
])
def test_both_stages_check_the_loop_keys(config_cls, key, value, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(config_cls, {key: value})
    assert from_dict(config_cls, {"max_minutes": 0.5}).max_minutes == 0.5


def test_stage_1_checks_its_image_keys():
    for key, value in (("image_every", -1), ("num_val_images", -1), ("val_sizes", [256, 0])):
        with pytest.raises(ConfigError, match="image_every and num_val_images must be >= 0 and val_sizes positive"):
            from_dict(AETrainConfig, {key: value})


def test_checkpoint_io_saves_and_restores_every_part(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    io = CheckpointIO(tmp_path, keep=2, model=model, optimizer=optimizer, ema=None)
    assert io.latest() is None
    for step in (1, 2, 3):
        io.save(step, samples_seen=8 * step)
    assert [p.name for p in list_states(tmp_path)] == ["state-00000002.pt", "state-00000003.pt"]
    state = load_state(io.latest())
    assert state.keys() == {"model", "optimizer", "ema", "step", "samples_seen", "rng"} and state["ema"] == {}
    expected_torch, expected_python = torch.rand(3), random.random()  # what the saved run draws next

    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = torch.optim.Adam(fresh.parameters())
    assert CheckpointIO(tmp_path, model=fresh, optimizer=fresh_optimizer, ema=None).load(io.latest()) == (3, 24)
    assert torch.equal(fresh.weight, model.weight)
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(3), expected_torch) and random.random() == expected_python


def _counting_loader(config, rank, world_size, generator, worker_init_fn):
    """A stand-in for ``make_loader``: batches ``{"i": (batch_size,)}`` of a stream that depends on the seed."""
    def stream():
        g = torch.Generator().manual_seed(config.seed)
        while True:
            yield {"i": torch.randint(0, 1000, (config.batch_size,), generator=g)}
    return stream()


def test_resumed_batches_replay_or_reseed():
    from dataclasses import dataclass

    @dataclass
    class Data:
        batch_size: int = 2
        seed: int = 0

    def batches(seed=5, **position):
        return resumed_batches(_counting_loader, Data(), seed=seed, rank=0, world_size=1, **position)

    straight = batches(exact_resume=True, step=0, samples_seen=0)
    first = [next(straight)["i"] for _ in range(5)]
    replayed = batches(exact_resume=True, step=3, samples_seen=6)
    assert all(torch.equal(next(replayed)["i"], b) for b in first[3:])  # continues where the saved run was
    reseeded = next(batches(exact_resume=False, step=3, samples_seen=6))["i"]
    assert torch.equal(reseeded, next(batches(seed=8, exact_resume=False, step=0, samples_seen=0))["i"])  # seed + step
    assert not torch.equal(reseeded, first[3])


def test_stage_1_records_the_magnification_its_patches_reach():
    from infd.config import from_dict
    from infd.training.ae_loop import AETrainConfig

    base = {"model": {"input_size": 128}, "data": {"patches": {"encoder_size": 128, "max_size": 512}}}
    assert from_dict(AETrainConfig, base).model.max_magnification == 4.0
    explicit = {**base, "model": {"input_size": 128, "max_magnification": 2.0}}
    assert from_dict(AETrainConfig, explicit).model.max_magnification == 2.0
