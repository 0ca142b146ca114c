"""Checkpoints: bit-exact round trip, config embedded, one-line errors for bad files."""
import pytest
import torch

from infd.checkpoint import CheckpointError, load_model, save_model
from infd.config import load_config
from infd.models.autoencoder import AutoencoderConfig, NeuralFieldAutoencoder


def tiny(**overrides):
    config = load_config(AutoencoderConfig, "configs/ae/tiny.yaml", overrides)
    return NeuralFieldAutoencoder(config)


def test_round_trip_is_bit_exact(tmp_path):
    model = tiny()
    path = save_model(model, tmp_path / "ae.safetensors")
    loaded = load_model(path)
    assert type(loaded) is NeuralFieldAutoencoder and loaded.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.eval().encode(x), loaded.encode(x))


def test_mismatched_checkpoint_names_the_keys(tmp_path):
    path = save_model(tiny(), tmp_path / "ae.safetensors")
    other = tiny(renderer={"name": "clif", "args": {"hidden": 16}})
    from infd.checkpoint import load_state_strict, read_checkpoint
    state, _ = read_checkpoint(path)
    with pytest.raises(CheckpointError) as err:
        load_state_strict(other, state, "ae.safetensors")
    message = str(err.value)
    assert "shape mismatch" in message and "renderer.blocks.0.conv1.bias (32,) vs model (16,)" in message and "\n" not in message
    del state["decoder.norm_out.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys: decoder.norm_out.weight.*unexpected keys: extra.weight"):
        load_state_strict(tiny(), state)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(bad)
    from safetensors.torch import save_file
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an infd checkpoint"):
        load_model(plain)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import safetensors.torch

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        save_model(tiny(), tmp_path / "ae.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_non_finite_weights_are_refused_at_load(tmp_path):
    from safetensors.torch import load_file, save_file

    from infd.checkpoint import read_checkpoint

    model = NeuralFieldAutoencoder(load_config(AutoencoderConfig, "configs/ae/tiny.yaml"))
    path = save_model(model, tmp_path / "m.safetensors")
    state, metadata = load_file(str(path)), read_checkpoint(path)[1]
    state["renderer.conv_out.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="renderer.conv_out.weight holds NaN"):
        load_model(tmp_path / "nan.safetensors")
