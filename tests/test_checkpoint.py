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


def _with_config(tmp_path, change) -> str:
    """A real tiny checkpoint whose stored config is rewritten by ``change(dict)``."""
    import json

    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    path = save_model(tiny(), tmp_path / "ok.safetensors")
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    metadata["config"] = change(config) if callable(change) else change
    if not isinstance(metadata["config"], str):
        metadata["config"] = json.dumps(metadata["config"])
    out = tmp_path / "hostile.safetensors"
    save_file(load_file(str(path)), str(out), metadata=metadata)
    return str(out)


def _set(key, value):
    def change(config):
        config[key] = value
        return config
    return change


@pytest.mark.parametrize("change, message", [
    (_set("channels", 10 ** 9), "out of range"),
    (_set("channels", 8192), "wider than 8192"),
    (_set("input_size", 10 ** 6), "larger than 16384"),
    (_set("channels", -8), "channels must be >= 1"),
    (_set("field_channels", 10 ** 5), "wider than 8192"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ("not json", "stored config is invalid"),
], ids=["channels 1e9", "wide", "input 1e6", "negative", "field", "deep", "garbage"])
def test_hostile_config_metadata_is_one_error_before_building(tmp_path, change, message):
    path = _with_config(tmp_path, change)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 500
