"""Lossless compression: exact round trips, code length near -log2 p(x), and clear errors on bad files.

Damaged and edited files are built from a real one: the header's fields are rewritten and the trailing checksum is
recomputed, as anyone can, so that the checks behind the checksum are what is tested.
"""

import errno
import hashlib
import io
import math
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from pixelrnn import codec
from pixelrnn.errors import ConfigError, ImageError, OutputError, write_atomic, writing
from pixelrnn.images import read_image
from pixelrnn.pictures import save_grid
from pixelrnn.cli import main
from helpers import refusal, seal, tiny_model

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
    payload_bits = 8 * codec.read_header(data).payload_bytes
    # Within 1% of -log2 p(x), plus the range coder's final words.
    assert payload_bits <= 1.01 * ideal_bits(model, images) + 64


def test_a_single_image_and_float64_models():
    model = tiny_model("pixelcnn", (1, 3, 3), 4, dtype=torch.float64)
    image = torch.randint(0, 4, (1, 3, 3))
    assert torch.equal(codec.decode(model, codec.encode(model, image)), image[None])


def test_class_labels_are_needed_where_they_can_be_stored():
    """The exact path stores each image's class, so a class-conditional model compresses given its labels; the
    float path stores none, so it refuses a class-conditional model."""
    conditional = tiny_model("pixelcnn", (1, 4, 4), 4, num_classes=3)
    images = torch.randint(0, 4, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="class-conditional.*--class N"):
        codec.encode(conditional, images)
    with pytest.raises(ConfigError, match="class-conditional.*float path.*stores no class.*exact path"):
        codec.encode(conditional, images, path="float")
    with pytest.raises(ConfigError, match="not class-conditional"):
        codec.encode(tiny_model("pixelcnn", (1, 4, 4), 4), images, labels=1)
    data = codec.encode(tiny_model("pixelcnn", (1, 4, 4), 4), images, path="float")
    with pytest.raises(ConfigError, match="class-conditional"):
        codec.decode(conditional, data)


def test_the_fingerprint_is_pinned():
    """The fingerprint is part of the file format: files already written name their model by it. It must stay
    byte-identical for the same config and weights (the shipped PixelCNN's, recorded when the format was fixed)."""
    import pixelrnn

    model = pixelrnn.load_pretrained("fashion-pixelcnn")
    assert codec.fingerprint(model) == "297d8bc52531121088e676a82a1be5fb3a882b3b4dbe7ca9b01d3c911ee00a95"


def test_the_fixed_overhead_of_the_float_path_is_at_most_40_bytes():
    model = tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32)
    for count in (1, 10):
        data = codec.encode(model, torch.randint(0, 17, (count, 1, 8, 8), generator=torch.Generator().manual_seed(0)),
                            path="float")
        assert len(data) - codec.read_header(data).payload_bytes == 36  # 4 + 1 + 7 varints + 3 x 8
    # The largest common case: 500 RGB 32x32 images of 256 levels, about 3 bits/dim of payload.
    fields = (500, 3, 32, 32, 256, 16, 500 * 3 * 32 * 32 * 3 // 32)
    framing = len(codec.MAGIC) + len(codec._varint(codec.VERSION)) + 3 * codec.DIGEST
    assert framing + sum(len(codec._varint(v)) for v in fields) <= 40


def test_a_tiny_payload_is_padded_and_still_decodes(monkeypatch):
    # With the bound raised so far that every file is below it, every file is padded: the decoder ignores the pad.
    monkeypatch.setattr(codec, "MAX_COMPRESSION", 0.25)
    model = tiny_model("pixelcnn", (1, 3, 3), 4, dtype=torch.float32)
    images = torch.randint(0, 4, (3, 1, 3, 3), generator=torch.Generator().manual_seed(2))
    for path in ("float", "exact"):
        data = codec.encode(model, images, path=path)
        assert codec.read_header(data).payload_words == codec._min_payload_words(images.numel(), 4)
        assert torch.equal(codec.decode(model, data), images)


@pytest.fixture(scope="module")
def coded():
    """A version 2 file (the float path); test_exact_codec.py holds the same checks for version 4."""
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    images = torch.randint(0, 8, (5, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    return model, images, codec.encode(model, images, path="float")


def fields_of(data: bytes) -> tuple[dict, bytes, bytes]:
    """The header's fields as a dict, its digests (model, images) and the payload, of a valid file."""
    h = codec.read_header(data)
    fields = dict(zip(codec.FIELDS, (h.count, *h.shape, h.levels, h.batch, h.payload_words)))
    return fields, h.model + h.images, data[h.payload_offset:-codec.DIGEST]


def rebuild(fields: dict, digests: bytes, payload: bytes, version: int = codec.VERSION) -> bytes:
    head = codec.MAGIC + codec._varint(version) + b"".join(codec._varint(fields[f]) for f in codec.FIELDS)
    return seal(head + digests + payload)


def test_another_model_is_refused(coded):
    _, _, data = coded
    other = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32, seed=5)
    assert "another model" in refusal(other, data)


@pytest.mark.parametrize("damage,expected", [
    ("truncate", "damaged"), ("flip", "damaged"), ("empty", "magic"), ("magic", "magic"), ("short", "damaged"),
])
def test_damaged_files_are_refused(coded, damage, expected):
    model, _, data = coded
    edited = bytearray(data)
    if damage == "truncate":
        edited = edited[:len(edited) // 2]
    elif damage == "flip":
        edited[len(edited) // 2] ^= 0x10
    elif damage == "empty":
        edited = b""
    elif damage == "magic":
        edited[:4] = b"JUNK"
    else:
        edited = edited[:7]
    assert expected in refusal(model, bytes(edited))


def test_an_old_or_future_version_is_refused_by_number(coded):
    model, _, data = coded
    # Version 1 framing: magic, u16 version, u32 header length, a JSON header, payload, sha256.
    old = b"PRNN" + (1).to_bytes(2, "little") + (2).to_bytes(4, "little") + b"{}"
    message = refusal(model, old + hashlib.sha256(old).digest())
    assert "version 1" in message and f"version {codec.VERSION}" in message and f"{codec.NAMED_VERSION}" in message
    assert f"{codec.EXACT_VERSION} (the exact path)" in message
    fields, digests, payload = fields_of(data)
    assert "version 5" in refusal(model, rebuild(fields, digests, payload, version=5))


def _edit(fields, **changes):
    return {**fields, **changes}


# The list of headers that passed the old checksum and crashed the reader, in the binary format's terms
# (a negative count, a list or a nested header have no binary form; their nearest forms are here).
BAD_HEADERS = {
    "batch 0": (lambda f, d, p: rebuild(_edit(f, batch=0), d, p), "batch is 0"),
    "count 0": (lambda f, d, p: rebuild(_edit(f, count=0), d, p), "count is 0"),
    "count 10**9": (lambda f, d, p: rebuild(_edit(f, count=10**9, batch=16), d, p), "cannot fit"),
    "count 2**62": (lambda f, d, p: rebuild(_edit(f, count=2**62), d, p), "cannot fit"),
    "batch above count": (lambda f, d, p: rebuild(_edit(f, batch=6), d, p), "larger than count"),
    "channels 0": (lambda f, d, p: rebuild(_edit(f, channels=0), d, p), "channels is 0"),
    "width 0": (lambda f, d, p: rebuild(_edit(f, width=0), d, p), "width is 0"),
    "levels 1": (lambda f, d, p: rebuild(_edit(f, levels=1), d, p), "levels is 1"),
    "another shape": (lambda f, d, p: rebuild(_edit(f, height=5), d, p), "this model codes"),
    "another levels": (lambda f, d, p: rebuild(_edit(f, levels=9), d, p), "this model codes"),
    "payload longer than the file": (lambda f, d, p: rebuild(_edit(f, **{"payload words": 9}), d, p),
                                     "payload words"),
    "payload not whole words": (lambda f, d, p: rebuild(f, d, p + b"\0\0"), "payload words"),
    "a missing field": (lambda f, d, p: seal(codec.MAGIC + b"\x02" + b"\x05\x01\x04\x04\x08\x05" + d + p),
                        "invalid"),
    "a varint too long (nesting)": (lambda f, d, p: seal(codec.MAGIC + b"\x02" + b"\x80" * 1000 + d + p),
                                    "longer than 9 bytes"),
    "a varint not in shortest form": (lambda f, d, p: seal(codec.MAGIC + b"\x02\x85\x00" + rebuild(f, d, p)[6:-8]),
                                      "shortest form"),
    "header of junk bytes": (lambda f, d, p: seal(codec.MAGIC + b"\x02" + b"\xff" * 40), "invalid"),
    "header only": (lambda f, d, p: seal(codec.MAGIC + b"\x02\x05\x01\x04"), "damaged"),
    "no room for the digests": (lambda f, d, p: seal(codec.MAGIC + b"\x02" + codec._varint(2**50)
                                                     + b"\x01\x04\x04\x08\x05\x00" + b"\x00" * 15), "fingerprint"),
    "edited fingerprint": (lambda f, d, p: rebuild(f, bytes(8) + d[8:], p), "another model"),
    "edited image checksum": (lambda f, d, p: rebuild(f, d[:8] + bytes(8), p), "edited after it was written"),
    "edited payload": (lambda f, d, p: rebuild(f, d, bytes([p[0] ^ 0xFF]) + p[1:]), "edited after it was written"),
    "count 21": (lambda f, d, p: rebuild(_edit(f, count=21), d, p), "edited after it was written"),
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_a_bad_header_behind_a_valid_checksum_is_one_clear_line(coded, case):
    model, _, data = coded
    make, expected = BAD_HEADERS[case]
    assert expected in refusal(model, make(*fields_of(data)))


def test_a_mismatch_of_the_decoded_images_names_both_causes(coded):
    model, _, data = coded
    message = refusal(model, BAD_HEADERS["edited payload"][0](*fields_of(data)))
    assert "edited" in message and "machine or software version" in message


def _mutations(data: bytes, rng: random.Random):
    """Edits of a valid file: most with the checksum recomputed, so that they reach the checks behind it."""
    fields, digests, payload = fields_of(data)
    header_end = len(data) - codec.DIGEST - len(payload)
    body = data[:-codec.DIGEST]
    interesting = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 21, 127, 128, 255, 256, 2**16, 2**31, 10**9, 2**62]
    kind = rng.choice(["field", "header byte", "payload byte", "truncate", "truncate sealed", "swap", "insert",
                       "delete", "flip unsealed"])
    if kind == "field":
        field = rng.choice(codec.FIELDS)
        return kind, rebuild(_edit(fields, **{field: rng.choice(interesting + [fields[field] + rng.choice([-1, 1])])}),
                             digests, payload)
    edited = bytearray(body)
    if kind == "header byte":
        edited[rng.randrange(header_end)] = rng.randrange(256)
    elif kind == "payload byte":
        edited[rng.randrange(header_end, len(body))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        return kind, data[:rng.randrange(len(data))]
    elif kind == "truncate sealed":
        edited = edited[:rng.randrange(len(body))]
    elif kind == "swap":
        i, j = rng.randrange(len(body)), rng.randrange(len(body))
        edited[i], edited[j] = edited[j], edited[i]
    elif kind == "insert":
        position = rng.randrange(len(body) + 1)
        edited[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    elif kind == "delete":
        position = rng.randrange(len(body))
        del edited[position:position + rng.randint(1, 4)]
    else:
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return kind, bytes(flipped)
    return kind, seal(bytes(edited))


def test_fuzzed_files_are_refused_cleanly_or_decoded_exactly(coded):
    model, images, data = coded
    rng = random.Random(13)
    outcomes = {"refused": 0, "exact": 0}
    for _ in range(400):
        kind, edited = _mutations(data, rng)
        try:
            decoded = codec.decode(model, edited)
        except codec.CodecError as e:
            assert str(e) and "\n" not in str(e), (kind, edited)
            outcomes["refused"] += 1
            continue
        # Any other exception fails the test; a decode must give back exactly the images.
        assert torch.equal(decoded, images), (kind, edited)
        outcomes["exact"] += 1
    assert outcomes["refused"] > 300


def test_images_that_do_not_fit_are_refused(coded):
    model, _, _ = coded
    with pytest.raises(codec.PixelRNNError, match="do not fit"):
        codec.encode(model, torch.zeros(1, 1, 5, 5, dtype=torch.long))
    with pytest.raises(codec.PixelRNNError, match=r"\[0, 8\)"):
        codec.encode(model, torch.full((1, 1, 4, 4), 8))


# Files written and images read: every failure is one line, and nothing half-written stays behind.

def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.prnn"
    target.write_bytes(b"old")

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match="disk is full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]


def test_a_directory_is_not_a_file_to_write(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        write_atomic(tmp_path, b"data")
    with pytest.raises(OutputError, match="directory"):
        with writing(tmp_path / "x"):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")


_FILE_SIZE_LIMIT_CHILD = """
import importlib.util, resource, signal, sys
spec = importlib.util.spec_from_file_location("errors", sys.argv[1])
errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(errors)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    errors.write_atomic(sys.argv[2], bytes(10_000))
except errors.OutputError as e:
    print(e)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE needs a POSIX system")
def test_a_write_beyond_the_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    # A real failing write, as on a full disk: the child may write at most 1000 bytes. Only errors.py is loaded,
    # so the child does not pay for importing torch.
    errors_py = Path(codec.__file__).with_name("errors.py")
    result = subprocess.run([sys.executable, "-c", _FILE_SIZE_LIMIT_CHILD, str(errors_py), str(tmp_path / "f.prnn")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cannot write {tmp_path / 'f.prnn'}: the file is larger than this system " \
                                    f"allows (file size limit); write elsewhere"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,error,expected", [
    ("grid", ConfigError, "no file extension"), ("grid.xyz", ConfigError, "cannot write '.xyz'"),
    (".", OutputError, "is a directory"),
])
def test_an_image_output_needs_a_known_extension_and_not_a_directory(tmp_path, name, error, expected):
    with pytest.raises(error, match=expected) as caught:
        save_grid(torch.zeros(2, 1, 3, 3, dtype=torch.long), 2, tmp_path / name)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 grey PNG whose header claims ``width`` x ``height`` pixels, with a valid header CRC."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    png = bytearray(buffer.getvalue())
    ihdr = 12  # after the 8-byte signature and the chunk's length: b"IHDR", then width and height
    png[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    png[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(png[ihdr:ihdr + 17]))
    return bytes(png)


def _noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("content,expected", [
    (_png_declaring(100_000, 100_000), "decompression-bomb limit"),
    (b"not an image at all", "not a readable image"),
    (_noise_png(16)[:170], "not a readable image"),  # truncated inside its pixel data: fails only when decoded
])
def test_images_that_cannot_be_read_are_one_line(tmp_path, content, expected):
    path = tmp_path / "in.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=expected) as caught:
        read_image(path, (1, 1, 1), 256)
    assert "\n" not in str(caught.value)

@settings(max_examples=15, deadline=None, derandomize=True)  # the same examples on every run
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


def test_a_file_of_a_shipped_model_decompresses_without_naming_the_model(tmp_path, monkeypatch, capsys):
    """The file records its model's fingerprint: given alone, a file of a shipped model finds its model; given with
    another model, the one line says which shipped model made it."""
    monkeypatch.chdir(tmp_path)
    images = torch.randint(0, 256, (2, 28, 28), generator=torch.Generator().manual_seed(0))
    for name, image in zip(("a", "b"), images):
        Image.fromarray(image.numpy().astype(np.uint8)).save(f"{name}.png")
    assert main(["compress", "fashion-pixelcnn", "a.png", "b.png", "-o", "f.prnn", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["decompress", "f.prnn", "-o", "out", "--quiet"]) == 0
    assert "compressed by the shipped model fashion-pixelcnn" in capsys.readouterr().out
    for name, image in zip(("a", "b"), images):
        assert torch.equal(read_image(f"out/{name}.png", (1, 28, 28), 256)[0], image)
    (tmp_path / "tiny.prnn").write_bytes(codec.encode(tiny_model("pixelcnn", (1, 4, 4), 4), torch.zeros(1, 1, 4, 4,
                                                                                                     dtype=torch.long)))
    for argv, expected in [(["fashion-row-lstm", "f.prnn"], "compressed by the shipped model fashion-pixelcnn, not "
                                                            "by fashion-row-lstm: pixelrnn decompress fashion-pixelcnn"),
                           (["tiny.prnn"], "not compressed by a shipped model; give the run that compressed it first"),
                           (["fashion-pixelcnn"], "give the compressed file after the model"),
                           (["a.png"], "a.png is not a file written by `pixelrnn compress`")]:
        assert main(["decompress", *argv, "-o", "again"]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "again").exists()


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
    # Output that cannot be written, and an image too large to open: one line each, status 2, nothing left behind.
    (tmp_path / "bomb.png").write_bytes(_png_declaring(100_000, 100_000))
    before = sorted(tmp_path.iterdir())
    for argv, expected in [(["compress", "run", *map(str, files[:1]), "-o", "out"], "is a directory"),
                           (["decompress", "run", "d.prnn", "-o", "d.prnn"], "in the way"),
                           (["compress", "run", "bomb.png", "-o", "b.prnn"], "decompression-bomb")]:
        assert main([*argv, "--quiet"]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    assert sorted(tmp_path.iterdir()) == before
    assert first.equal(codec.decode(model, (tmp_path / "d.prnn").read_bytes()))
