"""Layout files: valid ones load into conditions, every bad one is one LayoutError line naming the problem."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from infd.inverse.conditions import ConditionTerms, MaskedPixels, Pixels, build_condition_terms
from infd.inverse.draw import draw_layout
from infd.inverse.layout import LayoutError, load_layout
from infd.renderers.coords import FractionalWindow

from inverse_testing import PHOTO, ROOT


def write(tmp_path, data, name="layout.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


@pytest.fixture
def images(tmp_path):
    Image.open(PHOTO).save(tmp_path / "photo.png")
    mask = np.full((64, 64), 255, np.uint8)
    mask[16:48, 16:48] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def test_valid_layout_loads_into_terms(images):
    path = write(images, {"terms": [
        {"kind": "pixels", "box": [0, 0, 1, 1], "image": "photo.png", "resolution": 16, "name": "low"},
        {"kind": "masked_pixels", "box": [0.5, 0, 1, 0.5], "image": "photo.png", "known_mask": "mask.png",
         "weight": 2},
        {"kind": "clip_text", "box": [0, 0, 0.5, 1], "prompt": "a cat", "cutouts": 4, "resolution": [32, 64]}]},
        "layout.json")
    layout = load_layout(path)
    assert [t.kind for t in layout.terms] == ["pixels", "masked_pixels", "clip_text"]
    assert [t.name for t in layout.terms] == ["low", "masked_pixels1", "clip_text2"]
    assert layout.terms[0].resolution == (16, 16) and layout.terms[2].resolution == (32, 64)
    assert layout.terms[1].box == FractionalWindow(0.5, 0.0, 1.0, 0.5) and layout.terms[1].weight == 2.0
    assert layout.needs_clip
    with pytest.raises(LayoutError, match="needs CLIP weights"):
        build_condition_terms(layout)


def test_image_terms_load_resized_images_and_masks(images):
    path = write(images, {"terms": [
        {"kind": "pixels", "box": [0, 0, 1, 1], "image": "photo.png", "resolution": 16},
        {"kind": "masked_pixels", "box": [0, 0, 1, 1], "image": "photo.png", "known_mask": "mask.png"}]})
    low, masked = build_condition_terms(load_layout(path))
    assert isinstance(low, Pixels) and low.resolution == (16, 16) and low.target.shape == (3, 16, 16)
    assert isinstance(masked, MaskedPixels) and masked.resolution == (64, 64)
    photo = torch.from_numpy(np.asarray(Image.open(PHOTO).convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
    torch.testing.assert_close(masked.target, photo / 127.5 - 1)
    assert masked.known.shape == (1, 64, 64) and masked.known.sum() == 64 * 64 - 32 * 32
    assert masked.known[0, 20, 20] == 0 and masked.known[0, 2, 2] == 1
    # the masked loss ignores the hole: a render equal to the photo outside it has zero loss
    render = masked.target.clone()[None]
    render[:, :, 16:48, 16:48] = 1.0
    assert masked.loss(render).item() == 0 and low.loss(low.target[None] + 0.1).item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unique"):
        ConditionTerms([low, low])
    with pytest.raises(ValueError, match="at least one term"):
        ConditionTerms([])


BAD = [
    ({"terms": [{"kind": "pixels", "box": [0, 0, 1.5, 1], "image": "photo.png"}]}, "outside [0, 1]"),
    ({"terms": [{"kind": "pixels", "box": [-0.1, 0, 1, 1], "image": "photo.png"}]}, "outside [0, 1]"),
    ({"terms": [{"kind": "pixels", "box": [0.5, 0, 0.5, 1], "image": "photo.png"}]}, "is empty"),
    ({"terms": [{"kind": "pixels", "box": [0, 0, 1], "image": "photo.png"}]}, "four numbers"),
    ({"terms": [{"kind": "depth", "box": [0, 0, 1, 1]}]}, "unknown term kind 'depth'"),
    ({"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "nope.png"}]}, "image not found"),
    ({"terms": [{"kind": "masked_pixels", "box": [0, 0, 1, 1], "image": "photo.png", "known_mask": "no.png"}]},
     "known_mask not found"),
    ({"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "photo.png", "resolution": 0}]},
     "resolution must be positive"),
    ({"terms": [{"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "x", "resolution": [0, 8]}]},
     "resolution must be positive"),
    ({"terms": [{"kind": "clip_text", "box": [0, 0, 1, 1]}]}, "missing 'prompt'"),
    ({"terms": [{"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "x", "image": "photo.png"}]},
     "unknown key 'image'"),
    ({"terms": [{"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "x", "cutouts": -1}]}, "cutouts"),
    ({"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "photo.png", "weight": -1}]}, "weight"),
    ({"terms": [{"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "x", "name": "a"},
                {"kind": "clip_text", "box": [0, 0, 1, 1], "prompt": "y", "name": "a"}]}, "used twice"),
    ({"terms": []}, "non-empty list"),
    ({"conditions": []}, "unknown top-level key 'conditions'"),
    ([1, 2], "a layout is a mapping"),
]


@pytest.mark.parametrize("data, message", BAD, ids=[m for _, m in BAD])
def test_bad_layouts_are_one_line_errors(images, data, message):
    path = write(images, data)
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith(str(path)), text


def test_unreadable_files_are_one_line_errors(images):
    with pytest.raises(LayoutError, match="layout file not found"):
        load_layout(images / "missing.yaml")
    (images / "broken.yaml").write_text("terms: [\n  - kind: pixels\n  box: [")
    with pytest.raises(LayoutError, match="cannot parse") as info:
        load_layout(images / "broken.yaml")
    assert "\n" not in str(info.value)
    (images / "fake.png").write_text("not an image")
    path = write(images, {"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "fake.png"}]})
    with pytest.raises(LayoutError, match="cannot read image"):
        build_condition_terms(load_layout(path))


def test_example_layouts_are_valid():
    names = sorted(p.name for p in (ROOT / "configs" / "inverse").glob("*.yaml"))
    assert {"super_resolution.yaml", "inpainting.yaml", "two_prompts.yaml"} <= set(names)
    for name in names:
        layout = load_layout(ROOT / "configs" / "inverse" / name)
        if not layout.needs_clip:
            assert len(build_condition_terms(layout)) == len(layout.terms)


def test_draw_layout_outlines_each_box():
    image = np.zeros((100, 200, 3), np.uint8)
    boxes = [FractionalWindow(0.0, 0.0, 0.5, 0.5), FractionalWindow(0.5, 0.5, 1.0, 1.0)]
    drawn = np.asarray(draw_layout(image, boxes, ["a", "b"], line_px=2))
    assert drawn.shape == (100, 200, 3)
    assert drawn[30, 0].any() and drawn[30, 99].any()  # left and right edges of box a (x 0..99)
    assert drawn[75, 100].any() and drawn[99, 150].any()  # left and bottom edges of box b
    assert not drawn[75, 50].any() and not drawn[25, 150].any()  # outside both boxes: untouched
    assert not np.array_equal(drawn[30, 0], drawn[75, 100])  # one colour per box


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width x height`` (CRC fixed up, pixel data of an 8 x 8 image)."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR payload starts at byte 16
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_absurd_resolutions_and_image_bombs_are_one_line_errors(images):
    """A term renders at its resolution with gradients: 1e8 a side would ask for exabytes (issue 16, 14)."""
    path = write(images, {"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "photo.png",
                                     "resolution": 100_000_000}]})
    with pytest.raises(LayoutError, match="larger than 4096 a side") as info:
        load_layout(path)
    assert "\n" not in str(info.value)
    # a PNG whose header claims 20000 x 20000: refused from the header, before 1.2 GB of pixels exist
    (images / "bomb.png").write_bytes(png_claiming(20000, 20000))
    path = write(images, {"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "bomb.png",
                                     "resolution": 32}]}, name="bomb.yaml")
    with pytest.raises(LayoutError, match="decompression bomb") as info:
        build_condition_terms(load_layout(path))
    assert "\n" not in str(info.value)
    # an image term without a resolution renders at the image's size: bounded the same way
    Image.new("RGB", (5000, 8)).save(images / "wide.png")
    path = write(images, {"terms": [{"kind": "pixels", "box": [0, 0, 1, 1], "image": "wide.png"}]}, name="w.yaml")
    with pytest.raises(LayoutError, match="give its term a resolution of at most 4096"):
        build_condition_terms(load_layout(path))
