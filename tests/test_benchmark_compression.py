"""benchmarks/compression.py's size table: every format's round trip on tiny images with a tiny untrained model."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_model
from pixelrnn import exact

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compression.py"
spec = importlib.util.spec_from_file_location("compression", SCRIPT)
compression = importlib.util.module_from_spec(spec)
sys.modules["compression"] = compression  # dataclasses look their module up there
spec.loader.exec_module(compression)

METHODS = ["pixelrnn codec (exact path, format 4)", "PNG (optimize=True)", "WebP lossless (method 6)",
           "JPEG-XL lossless (effort 7)", "JPEG-XL lossless (effort 9)", "gzip -9 (raw bytes)", "xz -9 (raw bytes)"]


@pytest.fixture(scope="module")
def tiny():
    """A tiny PixelCNN of 5 levels (so the 8-bit pixels are v * 255 / 4) and five random 5x4 images."""
    model = tiny_model("pixelcnn", (1, 5, 4), 5, dtype=torch.float32)
    images = torch.randint(0, 5, (5, 1, 5, 4), generator=torch.Generator().manual_seed(0))
    return model, exact.quantize(model), images


def check_rows(rows, images, skipped=(), codec_decoded=None):
    """Every row in its place; each one that ran wrote files, decoded them (checked inside) and timed both."""
    layouts = [compression.PER_FILE] * len(METHODS) + [compression.ONE_FILE] * len(METHODS)
    assert [(r.layout, r.method) for r in rows[:-1]] == list(zip(layouts, METHODS * 2))
    assert rows[-1].method.startswith("model NLL") and rows[-1].size > 0
    for row in rows:
        assert row.values == images.numel()
        if row.method in skipped:
            assert row.size is None and row.note == compression.NOT_INSTALLED
            continue
        assert row.size > 0 and row.bits_per_dim == 8 * row.size / images.numel()
        if row.layout == "ideal code length":
            continue
        decoded = codec_decoded if row is rows[0] and codec_decoded is not None else len(images)
        assert row.encoded == len(images) and row.decoded == decoded and row.encode_s > 0 and row.decode_s > 0


def test_every_format_round_trips(tiny):
    pytest.importorskip("imagecodecs")
    model, integer, images = tiny
    rows = compression.size_table(model, integer, images)
    check_rows(rows, images)
    lines = compression.format_size_table(rows, ["header"], images)
    assert "grid of 2 rows x 3 columns (12 x 10 px, 1 empty cell black" in lines[1]
    assert sum(line.startswith(("| one image", "| all images", "| ideal")) for line in lines) == len(rows)


def test_jpegxl_rows_say_not_installed(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs raises ImportError
    model, integer, images = tiny
    rows = compression.size_table(model, integer, images, per_file_limit=2)
    check_rows(rows, images, skipped=METHODS[3:5], codec_decoded=2)
    assert "first 2 of 5 files" in rows[0].note
    table = "\n".join(compression.format_size_table(rows, [], images))
    assert table.count(compression.NOT_INSTALLED) == 4  # two efforts, two layouts


def test_a_tampered_decoder_fails_the_check(tiny):
    """The check is real: a format whose decoder changes one pixel stops the table."""
    model, integer, images = tiny
    png = compression.pillow_format("PNG", "PNG")

    def off_by_one(data, shape):
        pixels = png.decode(data, shape).copy()
        pixels.flat[0] ^= 1
        return pixels

    broken = compression.Format("broken PNG", png.encode, off_by_one, tiles=True)
    pixels = compression.to_uint8(images, model.levels)
    with pytest.raises(AssertionError, match="broken PNG"):
        compression.classical_rows(broken, pixels, compression.grid_of(*pixels.shape[:3]))


def test_tile_and_untile_are_inverse():
    pixels = np.random.default_rng(0).integers(0, 256, (7, 3, 2, 3), dtype=np.uint8)
    rows, columns = compression.grid_of(7, 3, 2)
    picture = compression.tile(pixels, rows, columns)
    assert picture.shape == (rows * 3, columns * 2, 3) and rows * columns >= 7
    assert np.array_equal(picture[3:6, 0:2], pixels[columns])  # row 1, column 0 is image number `columns`
    assert np.array_equal(compression.untile(picture, 7, 3, 2), pixels)
    with pytest.raises(compression.ConfigError, match="16383"):
        compression.grid_of(10 ** 6, 28, 28)
