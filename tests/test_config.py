"""Typed configs: YAML loads into dataclasses; unknown and mistyped keys fail by name."""
import pytest

from infd.config import ConfigError, from_dict, load_config, parse_overrides, to_dict
from infd.models.autoencoder import AutoencoderConfig
from infd.renderers import RendererConfig


def test_yaml_loads_nested_typed_config(tmp_path):
    path = tmp_path / "ae.yaml"
    path.write_text("channels: 64\nchannel_mult: [1, 2]\nrenderer: {name: liif, args: {hidden: [16, 16]}}\n")
    config = load_config(AutoencoderConfig, path)
    assert config.channels == 64 and config.channel_mult == (1, 2)
    assert config.renderer == RendererConfig("liif", {"hidden": [16, 16]})
    assert from_dict(AutoencoderConfig, to_dict(config)) == config


@pytest.mark.parametrize("data, needle", [
    ({"chanels": 64}, "unknown config key 'chanels'"),
    ({"renderer": {"name": "clif", "args": {"hiden": 3}}}, "unknown config key 'renderer.args.hiden'"),
    ({"renderer": {"nme": "clif"}}, "unknown config key 'renderer.nme'"),
    ({"channels": "wide"}, "'channels' must be an integer"),
    ({"bottleneck": "vqgan"}, "'bottleneck' must be one of"),
    ({"renderer": {"name": "nerf"}}, "unknown renderer 'nerf'"),
    ({"input_size": 30}, "not divisible by the downsampling factor 4"),
])
def test_bad_keys_give_one_line_errors(data, needle):
    with pytest.raises(ConfigError) as err:
        from_dict(AutoencoderConfig, data)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(AutoencoderConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse config"):
        load_config(AutoencoderConfig, bad)


def test_overrides_merge_into_file(tmp_path):
    path = tmp_path / "ae.yaml"
    path.write_text("channels: 64\nrenderer: {name: clif, args: {hidden: 32}}\n")
    overrides = parse_overrides(["renderer.args.hidden=48", "z_channels=4"])
    config = load_config(AutoencoderConfig, path, overrides)
    assert config.renderer.args == {"hidden": 48} and config.z_channels == 4 and config.channels == 64


def test_overrides_read_the_values_users_type():
    from infd.config import parse_overrides

    assert parse_overrides(["optimizer.lr=1e-4", "mixed_precision=no", "flag=true", "n=3", "x=.5"]) == {
        "optimizer": {"lr": 1e-4}, "mixed_precision": "no", "flag": True, "n": 3, "x": 0.5}
    with pytest.raises(ConfigError, match="max_steps"):
        parse_overrides(["max_steps=[1"])
