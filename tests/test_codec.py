"""Lossless compression: exact round trips, code length near -log2 p(x), and clear errors on bad files."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from pixelrnn import codec
from pixelrnn.cli import main
from helpers import tiny_model

CASES = [((1, 4, 5), 2), ((1, 3, 3), 17), ((3, 3, 4), 256), ((3, 2, 2), 5)]


def ideal_bits(model, images):
    with torch.no_grad():
        return -model.log_prob(images).sum().item() / math.log(2)


@pytest.mark.parametrize("image_shape,levels", CASES)
def test_round_trip_is_exact_and_near_the_model_code_length(model_name, image_shape, levels):
    model = tiny_model(model_name, image_shape, levels, dtype=torch.float32, gain=2.0)
    images = torch.randint(0, levels, (21, *image_shape), generator=torch.Generator().manual_seed(0))
    data = codec.encode(model, images)
    assert torch.equal(codec.decode(model, data), images)
    payload_bits = 8 * codec.read_header(data)["payload_bytes"]
    # Within 1% of -log2 p(x), plus the range coder's final words.
    assert payload_bits <= 1.01 * ideal_bits(model, images) + 64


def test_a_single_image_and_float64_models():
    model = tiny_model("pixelcnn", (1, 3, 3), 4, dtype=torch.float64)
    image = torch.randint(0, 4, (1, 3, 3))
    assert torch.equal(codec.decode(model, codec.encode(model, image)), image[None])


@pytest.fixture(scope="module")
def coded():
    model = tiny_model("row_lstm", (1, 4, 4), 8, dtype=torch.float32)
    images = torch.randint(0, 8, (5, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    return model, images, codec.encode(model, images)


def test_another_model_is_refused(coded):
    model, images, data = coded
    other = tiny_model("row_lstm", (1, 4, 4), 8, dtype=torch.float32, seed=5)
    with pytest.raises(codec.CodecError, match="another model"):
        codec.decode(other, data)


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "version"])
def test_damaged_files_are_refused(coded, damage):
    model, images, data = coded
    data = bytearray(data)
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "magic":
        data[:4] = b"JUNK"
    else:
        data[4] = 9
    expected = {"truncate": "truncated or corrupt", "flip": "truncated or corrupt", "magic": "magic",
                "version": "version 9"}[damage]
    with pytest.raises(codec.CodecError, match=expected):
        codec.decode(model, bytes(data))


def test_images_that_do_not_fit_are_refused(coded):
    model, _, _ = coded
    with pytest.raises(codec.PixelRNNError, match="do not fit"):
        codec.encode(model, torch.zeros(1, 1, 5, 5, dtype=torch.long))
    with pytest.raises(codec.PixelRNNError, match=r"\[0, 8\)"):
        codec.encode(model, torch.full((1, 1, 4, 4), 8))


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_round_trip_property(data):
    channels = data.draw(st.sampled_from([1, 3]))
    height, width = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    levels = data.draw(st.sampled_from([2, 3, 16, 256]))
    count = data.draw(st.integers(1, 18))
    name = data.draw(st.sampled_from(["pixelcnn", "row_lstm", "diagonal_bilstm"]))
    model = tiny_model(name, (channels, height, width), levels, dtype=torch.float32, gain=3.0)
    values = data.draw(st.lists(st.integers(0, levels - 1), min_size=count * channels * height * width,
                                max_size=count * channels * height * width))
    images = torch.tensor(values).view(count, channels, height, width)
    assert torch.equal(codec.decode(model, codec.encode(model, images)), images)


def test_compress_and_decompress_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", "run", "--quiet"]) == 0
    assert main(["compress", "run", "--data", "digits", "--limit", "6", "-o", "d.prnn", "--quiet"]) == 0
    assert "bits/dim" in capsys.readouterr().out
    assert main(["decompress", "run", "d.prnn", "-o", "out", "--quiet"]) == 0
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 6
    # The decompressed PNGs compress back to the same images.
    assert main(["compress", "run", *map(str, files), "-o", "again.prnn", "--quiet"]) == 0
    from pixelrnn.checkpoint import load_checkpoint
    model = load_checkpoint("run")
    first = codec.decode(model, (tmp_path / "d.prnn").read_bytes())
    again = codec.decode(model, (tmp_path / "again.prnn").read_bytes())
    assert torch.equal(first, again)
    (tmp_path / "bad.prnn").write_bytes(b"PRNN" + b"\0" * 10)
    assert main(["decompress", "run", "bad.prnn", "-o", "x", "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err
