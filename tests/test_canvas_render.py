"""--canvas stretch / crop / grow: latent canvas sizes, decoding canvases in windows, the render CLI."""
import numpy as np
import pytest
import torch
from PIL import Image

from infd.checkpoint import save_model
from infd.models.tiled_decode import decode_canvas
from infd.rendering.canvas import CanvasSpec, canvas_latent_size, crop_region
from infd.rendering.job import run_request
from infd.rendering.request import RequestError, make_request
from infd.renderers.windows import Region
from infd.config import load_config
from infd.diffusion.bundle import LatentDiffusion, LatentDiffusionConfig
from infd.diffusion.config import load_diffusion_config
from infd.models.autoencoder import AutoencoderConfig
from inverse_testing import ROOT, make_bundle
from test_render_cli import read, run


def test_canvas_latent_sizes_follow_the_aspect():
    assert canvas_latent_size((2160, 3840), 32) == (32, 57)
    assert canvas_latent_size((2160, 3840), 32, multiple=8) == (32, 56)
    assert canvas_latent_size((2048, 8192), 32) == (32, 128)
    assert canvas_latent_size((8192, 2048), 32, 2.0) == (256, 64)
    assert canvas_latent_size((64, 64), 32, 1.5) == (48, 48)
    assert canvas_latent_size((100, 101), 32, multiple=8) == (32, 32)  # never below the trained size


def test_crop_is_the_centred_window_of_the_longer_square():
    assert crop_region((2160, 3840), None) == ((3840, 3840), Region(840, 0, 2160, 3840))
    assert crop_region((300, 100), Region(10, 5, 20, 30)) == ((300, 300), Region(10, 105, 20, 30))


def test_decode_canvas_is_the_plain_decode_at_the_trained_size_and_blends_convexly():
    bundle = make_bundle()
    z = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(decode_canvas(bundle.decode, z, 8), bundle.decode(z))

        def local(z):  # a translation-equivariant decoder (nearest upsampling x4): windows agree exactly
            return z.repeat_interleave(4, -1).repeat_interleave(4, -2)

        big = torch.randn(1, 3, 12, 20, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(decode_canvas(local, big, 8, stride=4), local(big), atol=1e-6, rtol=0)
        torch.testing.assert_close(decode_canvas(local, big, 8, stride=3), local(big), atol=1e-6, rtol=0)
        phi = decode_canvas(bundle.decode, big, 8)
        assert phi.shape == (1, 32, 48, 80) and torch.isfinite(phi).all()
        # each field value lies between the windows' own decodes of it (a convex combination)
        lo, hi = torch.full_like(phi, float("inf")), torch.full_like(phi, -float("inf"))
        for top in (0, 4):
            for left in (0, 4, 8, 12):
                part = bundle.decode(big[..., top:top + 8, left:left + 8])
                rows, cols = slice(top * 4, top * 4 + 32), slice(left * 4, left * 4 + 32)
                lo[..., rows, cols] = torch.minimum(lo[..., rows, cols], part)
                hi[..., rows, cols] = torch.maximum(hi[..., rows, cols], part)
        assert bool(((phi >= lo - 1e-5) & (phi <= hi + 1e-5)).all())


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "tiny.safetensors"
    save_model(make_bundle(), path)
    return path


def test_crop_writes_the_centre_of_the_square_render(tmp_path, bundle_file):
    common = ("--checkpoint", bundle_file, "--steps", "3", "--seed", "4", "--tile", "24")
    assert run(*common, "--size", "64", "--out", "square.png", cwd=tmp_path).returncode == 0
    result = run(*common, "--size", "64x40", "--canvas", "crop", "--out", "crop.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    square, crop = read(tmp_path / "square.png"), read(tmp_path / "crop.png")
    assert crop.shape == (40, 64, 3)
    assert np.abs(crop - square[12:52]).max() <= 1  # tiles differ: float rounding may move one step


def test_grow_renders_a_wide_canvas_with_windows_and_labels(tmp_path, bundle_file):
    labels = tmp_path / "labels.yaml"
    labels.write_text("terms:\n  - {kind: class_label, box: [0, 0, 1, 0.5], label: 1}\n"
                      "  - {kind: class_label, box: [0, 0.5, 1, 1], label: null}\n")
    common = ("--checkpoint", bundle_file, "--steps", "3", "--canvas", "grow", "--size", "96x32")
    result = run(*common, "--labels", labels, "--out", "wide.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "windows" in result.stderr and "tiles" in result.stderr
    wide = read(tmp_path / "wide.png")
    assert wide.shape == (32, 96, 3) and wide.std() > 0
    result = run(*common, "--window-mode", "overlap", "--window-stride", "2", "--window-batch", "1",
                 "--out", "overlap.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stretched = run("--checkpoint", bundle_file, "--steps", "3", "--size", "96x32", "--out", "s.png", cwd=tmp_path)
    assert stretched.returncode == 0
    assert not np.array_equal(read(tmp_path / "s.png"), read(tmp_path / "overlap.png"))


def test_grow_in_process_matches_the_bundle_sampler(tmp_path, bundle_file):
    """The job samples a 8 x 24 latent canvas for a 3:1 output and renders its decoded field."""
    from infd.checkpoint import load_model
    model = load_model(bundle_file)
    request = make_request(size="96x32", out=str(tmp_path / "a.png"), steps=2, canvas="grow", checkpoint=str(bundle_file))
    seen = []
    run_request(request, model, make_bar=lambda desc, total: seen.append((desc, total)) or _Bar())
    assert ("windows", model.joint_windows_total((8, 24), request.sampling)) in seen
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (96, 32)


def _uvit_bundle():
    """The tiny autoencoder with the tiny U-ViT prior of configs/dm/uvit_tiny.yaml (input 8: its latents)."""
    ae = load_config(AutoencoderConfig, ROOT / "configs/ae/tiny.yaml", overrides={"bottleneck": "kl"})
    dm = load_diffusion_config(ROOT / "configs/dm/uvit_tiny.yaml", {"model": {"input_size": 8}})
    return LatentDiffusion(LatentDiffusionConfig(autoencoder=ae, diffusion=dm)).eval()


class _Bar:
    def update(self, n=1):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("args, message", [
    (["--canvas", "tile"], "--canvas must be one of stretch, crop, grow"),
    (["--canvas", "grow", "--canvas-scale", "0.5"], "--canvas-scale must be"),
    (["--canvas", "grow", "--window-mode", "random"], "--window-mode must be one of"),
    (["--canvas", "grow", "--window-stride", "0"], "--window-stride must be"),
    (["--canvas", "grow", "--window-batch", "0"], "--window-batch must be"),
    (["--canvas", "crop", "--also-sizes", "32"], "needs --canvas stretch"),
    (["--labels", "labels.yaml"], "--labels needs --canvas grow"),
    (["--canvas", "grow", "--labels", "missing.yaml"], "layout file not found"),
    (["--canvas", "grow", "--labels", "pixels.yaml"], "--labels takes class_label terms"),
    (["--canvas", "grow", "--labels", "labels.yaml"], "class 7 is not a label of this model (0..3)"),
])
def test_bad_canvas_options_are_one_line(tmp_path, args, message):
    (tmp_path / "labels.yaml").write_text("terms:\n  - {kind: class_label, box: [0, 0, 1, 1], label: 7}\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    (tmp_path / "pixels.yaml").write_text("terms:\n  - {kind: pixels, box: [0, 0, 1, 1], image: p.png}\n")
    result = run("--size", "64x32", "--steps", "2", *args, "--out", "x.png", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "x.png").exists()


def test_label_values_and_u_vit_windows_are_checked_against_the_model(tmp_path, bundle_file):
    (tmp_path / "labels.yaml").write_text("terms:\n  - {kind: class_label, box: [0, 0, 1, 1], label: 9}\n")
    result = run("--checkpoint", bundle_file, "--size", "64x32", "--canvas", "grow", "--labels", "labels.yaml",
                 "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 2 and "class 9 is not a label of this model (0..3)" in result.stderr
    uvit = tmp_path / "uvit.safetensors"
    save_model(_uvit_bundle(), uvit)
    result = run("--checkpoint", uvit, "--size", "64x32", "--canvas", "grow", "--window-mode", "shifted",
                 "--out", "x.png", cwd=tmp_path)
    assert result.returncode == 2 and "use --window-mode overlap" in result.stderr
    result = run("--checkpoint", uvit, "--size", "64x32", "--canvas", "grow", "--steps", "2", "--out", "x.png",
                 cwd=tmp_path)  # overlap windows, the default, fit any backbone
    assert result.returncode == 0, result.stderr


def test_inverse_refuses_class_label_terms(tmp_path):
    from infd.inverse.job import InverseError, make_inverse_request
    (tmp_path / "l.yaml").write_text("terms:\n  - {kind: class_label, box: [0, 0, 1, 1], label: 0}\n")
    with pytest.raises(InverseError, match="class_label boxes are for tools/render.py --labels"):
        make_inverse_request(layout=str(tmp_path / "l.yaml"), size="64", out=str(tmp_path / "o.png"))


def test_the_default_canvas_is_todays_stretch():
    request = make_request(size="64x32", out="x.png")
    assert request.canvas == CanvasSpec() and not request.canvas.joint and request.size == (32, 64)
    crop = make_request(size="64x32", out="x.png", canvas="crop")
    assert crop.size == (64, 64) and crop.region == Region(16, 0, 32, 64) and crop.output_size == (32, 64)
