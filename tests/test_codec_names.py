"""Lossless compression keeps the images' names: version 3 stores one per image, and files without names stay
version 2, byte for byte as written before names existed.

The damaged and unsafe name fields extend test_codec.py's family of damaged headers: each is built from a real file,
with the trailing checksum recomputed as anyone can, so that the checks behind the checksum are what is tested.
"""

import random

import pytest
import torch

import pixelrnn
from pixelrnn import codec
from pixelrnn.errors import ConfigError
from helpers import refusal, seal, tiny_model


# Two 28x28 images (a blank one, and one with a bright box) compressed with the shipped fashion-pixelcnn by the
# encoder as it was before names existed: version 2, kept to prove that such files still decode.
OLD_FILE = bytes.fromhex(
    "50524e4e0202011c1c80020214297d8bc525311210f2b6d3dc036ebadc88120200600b38441a6c15580a4727ec8daa0899427cc1a517a7"
    "fa8ba54c7e25e85ae0661bcb4ef287635c23e0aadd69b1eb18a37a661f08e69069df31513a1c5d265a48ba9cb6e0e78fecff3ba57bce41"
    "83537b534ed191")


def old_file_images() -> torch.Tensor:
    x = torch.zeros(2, 1, 28, 28, dtype=torch.long)
    x[1, 0, 10:18, 8:20] = 200
    x[1, 0, 12:16, 10:18] = 90
    return x


def test_a_file_written_before_names_existed_still_decodes():
    model = pixelrnn.load_pretrained("fashion-pixelcnn")
    assert codec.read_header(OLD_FILE).names is None
    images, names = codec.decode_named(model, OLD_FILE)
    assert torch.equal(images, old_file_images()) and names is None
    assert torch.equal(codec.decode(model, OLD_FILE), images)
    # The float path still writes a file without names byte for byte as before.
    assert codec.encode(model, old_file_images(), path="float") == OLD_FILE


@pytest.fixture(scope="module")
def named():
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    images = torch.randint(0, 8, (3, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    names = ("cat", "hund-02", "été 3")
    return model, images, names, codec.encode(model, images, names=names, path="float")  # version 3


def test_names_round_trip_and_cost_only_their_bytes(named):
    model, images, names, data = named
    decoded, back = codec.decode_named(model, data)
    assert torch.equal(decoded, images) and back == names
    assert torch.equal(codec.decode(model, data), images)  # decode keeps returning the images alone
    header = codec.read_header(data)
    assert data[len(codec.MAGIC)] == codec.NAMED_VERSION and header.names == names
    unnamed = codec.encode(model, images, path="float")
    assert unnamed[len(codec.MAGIC)] == codec.VERSION and codec.decode_named(model, unnamed)[1] is None
    assert len(data) - len(unnamed) == sum(1 + len(n.encode()) for n in names)  # a length byte and the UTF-8


@pytest.mark.parametrize("names,expected", [
    (["a", "b/c", "d"], "directory part"), (["a", "..", "d"], "folder"), (["a", ".", "d"], "folder"),
    (["", "b", "c"], "empty"), (["a", "b\0", "c"], "NUL"), (["a", "b\\c", "d"], "directory part"),
    (["a", "x" * 252, "c"], "longer than 251"), (["a", "\udcff", "c"], "UTF-8"),
    (["a", "b", "A"], "rename one"), (["a", "b"], "one name per image"),
])
def test_unsafe_or_repeated_names_are_refused_when_encoding(named, names, expected):
    model, images, _, _ = named
    with pytest.raises(ConfigError, match=expected) as caught:
        codec.encode(model, images, names=names)
    assert "\n" not in str(caught.value)


def test_a_name_of_251_bytes_is_the_longest():
    assert codec.name_problem("é" * 125 + "x") is None  # 251 bytes
    assert "longer" in codec.name_problem("é" * 126)


def named_file(data: bytes, names_field: bytes, count: int | None = None) -> bytes:
    """``data`` (a version 3 file) with its names replaced by ``names_field`` (and its count), sealed again."""
    h = codec.read_header(data)
    fields = dict(zip(codec.FIELDS, (count or h.count, *h.shape, h.levels, h.batch, h.payload_words)))
    head = codec.MAGIC + codec._varint(codec.NAMED_VERSION) + b"".join(codec._varint(fields[f]) for f in codec.FIELDS)
    return seal(head + h.model + h.images + names_field + data[h.payload_offset:-codec.DIGEST])


def names_field(*names: bytes) -> bytes:
    return b"".join(codec._varint(len(n)) + n for n in names)


BAD_NAMES = {
    "a length past the end": (names_field(b"a", b"b") + codec._varint(10**6) + b"c", "runs past the end"),
    "a length of 2**62": (names_field(b"a", b"b") + codec._varint(2**62), "runs past the end"),
    "a length not in shortest form": (names_field(b"a", b"b") + b"\x81\x00c", "shortest form"),
    "bad UTF-8": (names_field(b"a", b"\xff\xfe", b"c"), "not valid UTF-8"),
    "a cut UTF-8 character": (names_field(b"a", "é".encode()[:1], b"c"), "not valid UTF-8"),
    "a directory part": (names_field(b"a", b"../evil", b"c"), "directory part"),
    "an absolute path": (names_field(b"a", b"/etc/passwd", b"c"), "directory part"),
    "a backslash": (names_field(b"a", b"..\\evil", b"c"), "directory part"),
    "dot dot": (names_field(b"a", b"..", b"c"), "folder"),
    "dot": (names_field(b"a", b".", b"c"), "folder"),
    "NUL": (names_field(b"a", b"b\0.png", b"c"), "NUL"),
    "empty": (names_field(b"a", b"", b"c"), "empty"),
    "too long": (names_field(b"a", b"x" * 252, b"c"), "longer than 251"),
    "twice": (names_field(b"a", b"b", b"a"), "twice"),
    "twice in another case": (names_field(b"a", b"b", b"B"), "twice"),
    "one name short": (names_field(b"a", b"b"), "header"),
    "one name too many": (names_field(b"a", b"b", b"c", b"d"), "payload words"),
}


@pytest.mark.parametrize("case", BAD_NAMES)
def test_damaged_or_unsafe_names_are_one_clear_line(named, case):
    model, _, _, data = named
    field, expected = BAD_NAMES[case]
    edited = named_file(data, field)
    with pytest.raises(codec.CodecError, match=expected):
        codec.read_header(edited)  # what decompress checks before it writes anything
    assert expected in refusal(model, edited)


def test_a_forged_count_of_names_ends_at_the_file_s_end(named):
    model, _, _, data = named
    assert "header" in refusal(model, named_file(data, names_field(b"a", b"b", b"c"), count=2**62))


def test_fuzzed_named_files_are_refused_or_decoded_with_safe_names(named):
    model, images, names, data = named
    rng = random.Random(29)
    refused = 0
    for _ in range(200):
        edited = bytearray(data[:-codec.DIGEST])
        edited[rng.randrange(len(codec.MAGIC) + 1, len(edited))] = rng.randrange(256)
        try:
            decoded, back = codec.decode_named(model, seal(bytes(edited)))
        except codec.CodecError as e:
            assert str(e) and "\n" not in str(e)
            refused += 1
            continue
        assert torch.equal(decoded, images)
        assert back is None or all(codec.name_problem(n) is None for n in back)
    assert refused > 150

