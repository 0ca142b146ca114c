"""Sinks: files read back equal the in-memory render; limits; no partial files; the tile store."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from infd.rendering.distributed import TileStore, assign
from infd.rendering.engine import iter_render, plan_tiles, render
from infd.rendering.formats import FORMATS, SinkError, check_capacity, check_writable
from infd.rendering.sinks import FileSink, TensorSink, iter_bands, quantize
from infd.renderers import CLIF, CLIFConfig
from infd.renderers.coords import Region


@pytest.fixture
def renderer():
    return CLIF(CLIFConfig(field_channels=8, hidden=16, num_blocks=1)).eval()


@pytest.fixture
def phi():
    return torch.randn(1, 8, 5, 7)


def read_png(path):
    """A minimal independent PNG decoder (RGB, filter types None/Sub/Up) for 16-bit files."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, bits, colour, *_ = header
    assert colour == 2
    sample = bits // 8
    stride = width * 3 * sample
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, stride + 1)
    rows, previous = [], np.zeros(stride, np.uint8)
    for line in raw:
        kind, row = line[0], line[1:].copy()
        if kind == 1:
            for i in range(3 * sample, stride):
                row[i] = (int(row[i]) + int(row[i - 3 * sample])) % 256
        elif kind == 2:
            row = (row.astype(np.int32) + previous) % 256
        else:
            assert kind == 0
        previous = row.astype(np.uint8)
        rows.append(previous)
    out = np.stack(rows).view(">u2" if bits == 16 else np.uint8)
    return out.reshape(height, width, 3).astype(np.uint16 if bits == 16 else np.uint8)


def test_quantize_maps_minus_one_to_one_onto_the_byte_range():
    x = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert quantize(x, 8)[0, 0, :, 0].tolist() == [0, 0, 128, 191, 255, 255]  # round((x + 1) * 127.5)
    q16 = quantize(x, 16)
    assert q16.dtype == np.uint16 and q16[0, 0, :, 0].tolist() == [0, 0, 32768, 49151, 65535, 65535]


@pytest.mark.parametrize("size, bits", [((37, 53), 8), ((37, 53), 16), ((1, 1), 8), ((40, 16), 16)])
def test_tiff_read_back_equals_in_memory_render(tmp_path, renderer, phi, size, bits):
    path = tmp_path / "x.tif"
    memory = render(renderer, phi, size, tile=12)
    render(renderer, phi, size, tile=12, sink=FileSink(path, bits=bits, tiff_tile=16))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.tilelength == 16 and page.tilewidth == 16
        back = page.asarray()
    assert back.shape == (*size, 3) and back.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_array_equal(back, quantize(memory, bits)[0])


def test_tiff_tiles_differ_from_render_tiles_and_bigtiff_works(tmp_path, renderer, phi):
    memory = render(renderer, phi, (45, 70), tile=20)
    path = tmp_path / "big.tiff"
    render(renderer, phi, (45, 70), tile=20, sink=FileSink(path, tiff_tile=32, bigtiff=True))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        np.testing.assert_array_equal(tif.asarray(), quantize(memory)[0])


def test_wider_than_100000_pixels(tmp_path, renderer, phi):
    size = (1, 100_003)
    memory = render(renderer, phi, size, tile=4096)
    render(renderer, phi, size, tile=4096, sink=FileSink(tmp_path / "wide.tif"))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "wide.tif"), quantize(memory)[0])


@pytest.mark.parametrize("bits", [8, 16])
def test_png_read_back_equals_in_memory_render(tmp_path, renderer, phi, bits):
    size = (29, 41)
    memory = quantize(render(renderer, phi, size, tile=9), bits)
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    phi2 = torch.cat([phi, -phi])
    memory2 = quantize(render(renderer, phi2, size, tile=9), bits)
    FileSink(paths, bits=bits).consume(iter_render(renderer, phi2, size, tile=9), size, 2)
    for path, expected in zip(paths, memory2):
        np.testing.assert_array_equal(read_png(path), expected)
        with Image.open(path) as image:  # an independent reader agrees (Pillow reads 16-bit RGB as 8-bit)
            assert image.size == (41, 29)
            np.testing.assert_array_equal(np.asarray(image.convert("RGB")), expected >> 8 if bits == 16 else expected)
    # The same sample in a batch of 1 or 2: equal up to float rounding (one 16-bit step at most).
    assert np.abs(memory2[0].astype(int) - memory[0]).max() <= 1


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_lossy_formats_are_close(tmp_path, ext):
    smooth = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 48, 64).contiguous()
    path = tmp_path / f"x.{ext}"
    FileSink(path).consume([(Region(0, 0, 48, 64), smooth)], (48, 64), 1)
    with Image.open(path) as image:
        back = np.asarray(image.convert("RGB")).astype(int)
    assert back.shape == (48, 64, 3)
    assert np.abs(back - quantize(smooth)[0]).mean() < 3


def test_incomplete_or_interrupted_render_leaves_no_file(tmp_path, renderer, phi):
    size = (30, 30)
    for ext in ("png", "tif", "jpg"):
        path = tmp_path / f"x.{ext}"
        tiles = list(iter_render(renderer, phi, size, tile=10))
        with pytest.raises(ValueError, match="incomplete image"):
            FileSink(path).consume(tiles[:-3], size, 1)

        def interrupted():
            yield from tiles[:4]
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            FileSink(path).consume(interrupted(), size, 1)
        with pytest.raises(ValueError, match="row by row"):
            FileSink(path).consume([tiles[1], tiles[0]], size, 1)
        assert list(tmp_path.iterdir()) == []  # no output, no temp file


def test_tensor_sink_collects_on_the_tiles_device_or_the_one_given(renderer, phi):
    tiles = list(iter_render(renderer, phi, (9, 14), tile=5))
    on_cpu = TensorSink().consume(iter(tiles), (9, 14), 1)
    assert on_cpu.device.type == "cpu" and on_cpu.dtype == torch.float32
    torch.testing.assert_close(on_cpu, render(renderer, phi, (9, 14), tile=7), rtol=0, atol=1e-5)
    meta = [(region, pixels.to("meta")) for region, pixels in tiles]  # a stand-in for tiles on another device
    assert TensorSink().consume(iter(meta), (9, 14), 1).device.type == "meta"  # no round trip to the CPU
    assert TensorSink("meta").consume(iter(tiles), (9, 14), 1).device.type == "meta"
    with pytest.raises(ValueError, match="no tiles"):
        TensorSink().consume(iter([]), (9, 14), 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tensor_sink_keeps_a_gpu_render_on_the_gpu(renderer, phi):
    gpu = render(renderer.cuda(), phi.cuda(), (33, 40), tile=16)
    assert gpu.device.type == "cuda"
    cpu = render(renderer.cuda(), phi.cuda(), (33, 40), tile=16, sink=TensorSink("cpu"))
    assert cpu.device.type == "cpu"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)


def test_iter_bands_joins_tiles_into_full_width_rows():
    tiles = [(Region(t, l, 2, 3), np.full((1, 2, 3, 3), 10 * t + l, np.uint8))
             for t in (0, 2) for l in (0, 3)]
    bands = list(iter_bands(tiles, (4, 6)))
    assert [top for top, _ in bands] == [0, 2]
    assert bands[1][1][0, :, :, 0].tolist() == [[20, 20, 20, 23, 23, 23]] * 2


def test_capacity_limits():
    check_capacity(FORMATS["jpeg"], (65535, 10))
    with pytest.raises(SinkError, match="JPEG can hold"):
        check_capacity(FORMATS["jpeg"], (10, 65536))
    with pytest.raises(SinkError, match="WEBP can hold"):
        check_capacity(FORMATS["webp"], (16384, 10))
    with pytest.raises(SinkError, match="8-bit"):
        check_capacity(FORMATS["jpeg"], (10, 10), bits=16)
    with pytest.raises(SinkError, match="memory"):
        check_capacity(FORMATS["jpeg"], (60000, 60000), batch=64)
    with pytest.raises(SinkError, match="on disk"):
        check_capacity(FORMATS["tiff"], (2**31, 2**12), directory="/tmp")


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "x.png")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    (tmp_path / "file").write_text("")
    with pytest.raises(SinkError, match="not a directory"):
        check_writable(tmp_path / "file" / "x.png")
    with pytest.raises(SinkError, match="is a directory"):
        check_writable(tmp_path)


def test_tile_store_assembled_by_two_ranks_is_byte_identical(tmp_path, renderer, phi):
    """What two ranks do with a shared image, in one process: each fills its tiles, one writes."""
    size = (45, 38)
    tiles = plan_tiles(size, None, 16)
    direct = tmp_path / "direct.tif"
    FileSink(direct).consume(iter_render(renderer, phi, size, tiles=tiles), size, 1)
    store = TileStore(tmp_path / ".store", size, np.uint8, create=True)
    for rank in (1, 0):
        mine = [tiles[i] for i in assign(len(tiles), rank, 2)]
        for region, pixels in iter_render(renderer, phi, size, tiles=mine):
            store.write(region, quantize(pixels)[0])
    store.flush()
    assembled = tmp_path / "assembled.tif"
    FileSink(assembled).write_quantized(store.iter_bands(rows=7), size, 1)
    store.remove()
    assert assembled.read_bytes() == direct.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assembled.tif", "direct.tif"]


@pytest.mark.parametrize("name", ["full.png", "full.jpg"])
def test_a_full_disk_is_one_sink_error_and_leaves_no_file(renderer, phi, tmp_path, monkeypatch, name):
    """ENOSPC halfway through a PNG (streamed in bands) or a JPEG (saved at the end): one line, no file."""
    import errno

    from infd.rendering.png import PngWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PngWriter, "write_rows", full)
    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(SinkError, match="No space left on device; no partial file was left"):
        render(renderer, phi, (40, 30), tile=16, sink=FileSink(tmp_path / name))
    assert list(tmp_path.iterdir()) == []
