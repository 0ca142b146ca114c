"""Decoding bytes to RGB: every kind of bad file fails cleanly, every odd mode decodes right."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from infd.data.decode import DecodeConfig, DecodeError, decode_image, open_image, oriented_size, request_draft


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8)


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose (valid, CRC-checked) header claims ``width x height`` but holds almost no data."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"this is a text file, not a png\n", "not a recognised image"),
    (png_with_size(100_000, 100_000), "decompression bomb"),
    (png_with_size(12_000, 10_000), "decompression bomb: image is 12000x10000"),
], ids=["zero-bytes", "text-named-png", "header-claims-100000x100000", "header-claims-120MP"])
def test_bad_headers_raise_decode_error(data, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_truncated_files_raise_decode_error(fmt):
    data = encode(Image.fromarray(noise(64, 64)), fmt)
    with pytest.raises(DecodeError, match="corrupt image data|unreadable header"):
        decode_image(data[: len(data) // 2])


def test_bomb_limit_is_configurable():
    data = encode(Image.fromarray(noise(40, 50)), "PNG")
    assert decode_image(data, DecodeConfig(max_pixels=2000)).size == (50, 40)
    with pytest.raises(DecodeError, match="max_pixels"):
        decode_image(data, DecodeConfig(max_pixels=1999))


def test_one_pixel_image_decodes():
    img = decode_image(encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"))
    assert img.mode == "RGB" and img.size == (1, 1) and img.getpixel((0, 0)) == (10, 200, 30)


def test_16bit_grey_png_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    img = decode_image(encode(Image.fromarray(values), "PNG"))
    assert np.asarray(img)[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.asarray(img).shape == (1, 4, 3)


def test_16bit_rgb_png_decodes_to_8bit():
    # raw 16-bit RGB PNG (Pillow cannot write one): values v * 257 must come back as v
    rgb = noise(3, 5).astype(np.uint16) * 257
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb)
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 3, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    np.testing.assert_array_equal(np.asarray(decode_image(data)), rgb // 257)


def test_cmyk_jpeg_decodes_to_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    img = decode_image(encode(cmyk, "JPEG", quality=95))
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert img.mode == "RGB" and r > 240 and g < 15 and b < 15


@pytest.mark.parametrize("background, expected", [("white", 255), ("black", 0)])
def test_rgba_png_is_composited(background, expected):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque
    rgba[0, 1] = (200, 100, 50, 0)  # fully transparent
    rgba[1, :] = (100, 100, 100, 128)  # half
    img = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), DecodeConfig(background=background))
    out = np.asarray(img).astype(int)
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[0, 1].tolist() == [expected] * 3
    half = 100 * 128 / 255 + expected * 127 / 255
    assert np.all(np.abs(out[1] - half) <= 1)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1"])
def test_other_modes_decode_to_rgb(mode):
    src = Image.fromarray(noise(8, 8)).convert(mode)
    img = decode_image(encode(src, "PNG"))
    assert img.mode == "RGB" and img.size == (8, 8)
    if mode == "L":
        grey = np.asarray(src)
        np.testing.assert_array_equal(np.asarray(img), np.stack([grey] * 3, -1))


def test_palette_transparency_is_composited():
    src = Image.new("P", (4, 4), 1)
    src.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    src.info["transparency"] = 1  # palette entry 1 (red) is transparent
    img = decode_image(encode(src, "PNG", transparency=1), DecodeConfig(background="white"))
    assert np.asarray(img)[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied():
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[0, 0] = (255, 0, 0)  # stored top-left pixel
    src = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    data = encode(src, "PNG", exif=exif)
    assert oriented_size(open_image(data)) == (20, 40)
    img = np.asarray(decode_image(data))
    assert img.shape == (40, 20, 3)
    assert img[0, -1].tolist() == [255, 0, 0]  # top-left went to the top-right


def test_draft_keeps_at_least_the_requested_size():
    data = encode(Image.fromarray(noise(400, 600)), "JPEG")
    img = open_image(data)
    assert request_draft(img, (140, 90)) == 4
    assert img.size == (150, 100)
    img = open_image(encode(Image.fromarray(noise(40, 60)), "PNG"))
    assert request_draft(img, (10, 10)) == 1 and img.size == (60, 40)
