"""Format version 4: the exact path's files round-trip, store names and classes, and refuse every damaged or crafted
header in one line.

Damaged and edited files are built from a real one: the header's fields are rewritten and the trailing checksum is
recomputed, as anyone can, so that the checks behind the checksum are what is tested (as test_codec.py does for
versions 2 and 3).
"""

import math
import random

import pytest
import torch

from pixelrnn import codec, exact
from pixelrnn.exact import coding
from pixelrnn.errors import ConfigError
from helpers import refusal, seal, tiny_model
from test_codec_names import BAD_NAMES


def ideal_bits(model, images, labels=None):
    with torch.no_grad():
        return -model.log_prob(images, labels).sum().item() / math.log(2)


@pytest.mark.parametrize("image_shape,levels,count", [((1, 4, 4), 2, 21), ((1, 3, 3), 17, 130), ((3, 2, 4), 256, 3)])
def test_round_trip_is_exact_and_near_the_model_code_length(model_name, image_shape, levels, count):
    """Every family codes with the exact path."""
    model = tiny_model(model_name, image_shape, levels, dtype=torch.float32, gain=2.0)
    images = torch.randint(0, levels, (count, *image_shape), generator=torch.Generator().manual_seed(0))
    data = codec.encode(model, images)
    header = codec.read_header(data)
    assert header.version == codec.EXACT_VERSION and len(header.streams) == -(-count // codec.EXACT_BATCH)
    decoded = codec.decode_file(model, data)
    assert torch.equal(decoded.images, images) and decoded.names is None and decoded.labels is None
    assert 8 * header.payload_bytes <= 1.01 * ideal_bits(model, images) + 64 * len(header.streams)


def test_a_class_conditional_model_stores_the_classes_and_counts_them():
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32, gain=2.0, num_classes=10)
    with torch.no_grad():
        for embedding in model.class_bias:
            embedding.weight.normal_(generator=torch.Generator().manual_seed(1))
    images = torch.randint(0, 8, (70, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    labels = torch.arange(70) % 10
    data = codec.encode(model, images, labels=labels, names=[f"i{k}" for k in range(70)])
    decoded = codec.decode_file(model, data)
    assert torch.equal(decoded.images, images) and torch.equal(decoded.labels, labels)
    assert decoded.names == tuple(f"i{k}" for k in range(70))
    header = codec.read_header(data)
    assert header.classes == 10
    label_bits = 70 * math.log2(10)  # the uniform code of the classes, inside the payload
    assert 8 * header.payload_bytes >= ideal_bits(model, images, labels) + label_bits
    assert 8 * header.payload_bytes <= 1.01 * (ideal_bits(model, images, labels) + label_bits) + 64 * 2
    one = codec.encode(model, images[:3], labels=4)  # one label for all
    assert torch.equal(codec.decode_file(model, one).labels, torch.full((3,), 4))
    with pytest.raises(ConfigError, match=r"\[0, 10\)"):
        codec.encode(model, images[:3], labels=10)


def test_a_model_of_one_class_stores_nothing_for_it():
    model = tiny_model("pixelcnn", (1, 3, 3), 4, dtype=torch.float32, num_classes=1)
    images = torch.randint(0, 4, (5, 1, 3, 3), generator=torch.Generator().manual_seed(3))
    data = codec.encode(model, images, labels=0)
    assert torch.equal(codec.decode_file(model, data).labels, torch.zeros(5, dtype=torch.long))


def test_the_fixed_overhead_is_ten_bytes_above_version_2():
    """Flags, the integer model's fingerprint and one stream length: 36 bytes of version 2, plus 10."""
    model = tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32)
    images = torch.randint(0, 17, (1, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    data = codec.encode(model, images)
    assert len(data) - codec.read_header(data).payload_bytes == 36 + 1 + 8 + 1


def test_the_file_does_not_depend_on_the_python_callers_integer_model_or_batching(monkeypatch):
    """The integer model is a function of the weights, and groups of images are independent streams: a stored
    integer model, or decoding many groups at once or one at a time, gives the same bytes and images."""
    model = tiny_model("pixelcnn", (1, 3, 3), 5, dtype=torch.float32, gain=2.0)
    images = torch.randint(0, 5, (9, 1, 3, 3), generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(codec, "EXACT_BATCH", 2)
    data = codec.encode(model, images)
    assert codec.encode(model, images, integer=exact.quantize(model)) == data
    assert len(codec.read_header(data).streams) == 5
    monkeypatch.setattr(coding, "CPU_DECODE_BYTES", 1)  # one group per decoding batch
    assert torch.equal(codec.decode(model, data), images)


def test_decoding_takes_more_threads_only_for_large_steps_and_fits_them_to_the_load(monkeypatch):
    """Small steps walk on one thread; large ones on the caller's threads, with a fitter that looks at the load
    between values and may lower them. The images are the same on any count."""
    model = tiny_model("row_lstm", (1, 3, 4), 6, dtype=torch.float32, gain=2.0)
    images = torch.randint(0, 6, (3, 1, 3, 4), generator=torch.Generator().manual_seed(2))
    data = codec.encode(model, images)
    integer = exact.quantize(model)
    assert coding.decode_threads(integer, 3) == 1  # a tiny model's steps are far too small
    seen = []

    class Fitter:
        """Says at the first look that another process holds a core: down to one thread."""

        def __init__(self, most):
            self.most = most

        def between_steps(self):
            seen.append(torch.get_num_threads())
            if len(seen) == 1:
                torch.set_num_threads(1)
                return 1
            return None

    monkeypatch.setattr(coding, "ThreadFitter", Fitter)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert torch.equal(codec.decode(model, data), images) and seen == []  # one thread: no fitter
        monkeypatch.setattr(coding, "PARALLEL_STEP_FLOPS", 0)
        assert coding.decode_threads(integer, 3) == 2
        assert torch.equal(codec.decode(model, data), images)
        assert seen[:2] == [2, 1] and len(seen) == 3 * 4  # a look before each value; the count it set held
        assert torch.get_num_threads() == 2  # the caller's count, back
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def coded():
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    images = torch.randint(0, 8, (5, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    return model, images, codec.encode(model, images, names=["a", "b", "c", "d", "e"])


def parts(data: bytes) -> dict:
    """A valid version-4 file's parts, to rebuild edited copies from."""
    h = codec.read_header(data)
    fields = dict(zip(codec.FIELDS, (h.count, *h.shape, h.levels, h.batch, h.payload_words)))
    names = b"".join(codec._varint(len(n.encode())) + n.encode() for n in h.names or ())
    alpha = codec._alpha_field(h.alpha, h.count) if h.alpha else b""
    return dict(flags=(codec.NAMES_FLAG if h.names else 0) | (codec.LABELS_FLAG if h.classes else 0)
                | (codec.ALPHA_FLAG if h.alpha else 0), fields=fields,
                classes=h.classes, digests=h.model + h.integer + h.images, names=names, alpha=alpha,
                streams=list(h.streams), payload=data[h.payload_offset:-codec.DIGEST])


def build(p: dict, version: int = codec.EXACT_VERSION) -> bytes:
    head = codec.MAGIC + codec._varint(version) + codec._varint(p["flags"])
    head += b"".join(codec._varint(p["fields"][f]) for f in codec.FIELDS)
    if p["classes"] is not None:
        head += codec._varint(p["classes"])
    lengths = b"".join(codec._varint(n) for n in p["streams"])
    return seal(head + p["digests"] + p["names"] + p["alpha"] + lengths + p["payload"])


def edit(p: dict, **changes) -> dict:
    out = {**p, **{k: v for k, v in changes.items() if k != "fields"}}
    out["fields"] = {**p["fields"], **changes.get("fields", {})}
    return out


BAD = {
    "unknown flag": (lambda p: build(edit(p, flags=p["flags"] | 8)), "unknown flags"),
    "alpha flag without its bits": (lambda p: build(edit(p, flags=p["flags"] | 4)), "invalid"),
    "alpha bits without the flag": (lambda p: build(edit(p, alpha=b"\x01")), "invalid"),
    "labels flag without classes": (lambda p: build(edit(p, flags=p["flags"] | 2, classes=0)), "classes is 0"),
    "classes 2**40": (lambda p: build(edit(p, flags=p["flags"] | 2, classes=2**40)), "outside"),
    "labels for a model without classes": (lambda p: build(edit(p, flags=p["flags"] | 2, classes=3)),
                                           "stores 3 class labels"),
    "names flag dropped": (lambda p: build(edit(p, flags=0)), "invalid"),
    "batch 0": (lambda p: build(edit(p, fields={"batch": 0})), "batch is 0"),
    "batch above count": (lambda p: build(edit(p, fields={"batch": 6})), "larger than count"),
    "count 2**62": (lambda p: build(edit(p, fields={"count": 2**62})), "invalid"),
    "levels 1": (lambda p: build(edit(p, fields={"levels": 1})), "levels is 1"),
    "another shape": (lambda p: build(edit(p, fields={"height": 5})), "this model codes"),
    "a stream too long": (lambda p: build(edit(p, streams=[p["streams"][0] + 1])), "more than"),
    "a stream too short": (lambda p: build(edit(p, streams=[p["streams"][0] - 1])), "belong to no stream"),
    "one stream too many": (lambda p: build(edit(p, streams=p["streams"] + [0])), "payload"),
    "batch 1: five streams missing": (lambda p: build(edit(p, fields={"batch": 1})), "invalid"),
    "payload not whole words": (lambda p: build(edit(p, payload=p["payload"] + b"\0\0")), "payload words"),
    "edited fingerprint": (lambda p: build(edit(p, digests=bytes(8) + p["digests"][8:])), "another model"),
    "edited integer fingerprint": (lambda p: build(edit(p, digests=p["digests"][:8] + bytes(8) + p["digests"][16:])),
                                   "another integer model"),
    "edited image checksum": (lambda p: build(edit(p, digests=p["digests"][:16] + bytes(8))), "edited"),
    "edited payload": (lambda p: build(edit(p, payload=bytes([p["payload"][0] ^ 0xFF]) + p["payload"][1:])),
                       "edited"),
    "a name made unsafe": (lambda p: build(edit(p, names=p["names"].replace(b"\x01c", b"\x01/"))), "directory part"),
    "no room for the digests": (lambda p: seal(codec.MAGIC + b"\x04\x00" + b"\x05\x01\x04\x04\x08\x05\x02" +
                                               bytes(20)), "fingerprint"),
    "a varint too long": (lambda p: seal(codec.MAGIC + b"\x04" + b"\x80" * 100), "longer than 9 bytes"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_header_behind_a_valid_checksum_is_one_clear_line(coded, case):
    model, _, data = coded
    make, expected = BAD[case]
    assert expected in refusal(model, make(parts(data)))


@pytest.fixture(scope="module")
def named():
    """A version-4 file of three named images, as test_codec_names.py's version-3 one."""
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    images = torch.randint(0, 8, (3, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    return model, codec.encode(model, images, names=("cat", "hund-02", "été 3"))


@pytest.mark.parametrize("case", BAD_NAMES)
def test_damaged_or_unsafe_names_of_version_4_are_one_clear_line(named, case):
    """test_codec_names.py's damaged names, in a version-4 file (between the digests and the streams' lengths)."""
    model, data = named
    field, expected = BAD_NAMES[case]
    edited = build(edit(parts(data), names=field))
    if case.startswith("one name"):  # the fields after the names are then read from the wrong bytes
        expected = "header is invalid"
    with pytest.raises(codec.CodecError, match=expected):
        codec.read_header(edited)  # what decompress checks before it writes anything
    assert expected in refusal(model, edited)


def test_a_file_of_another_integer_model_is_refused_with_the_remedy(coded):
    model, _, data = coded
    integer = exact.quantize(model, settings=exact.Settings(act_bits=12))
    with pytest.raises(codec.CodecError, match=f"another integer model.*{exact.FILE}"):
        codec.decode(model, data, integer=integer)


def test_damaged_files_are_refused(coded):
    model, _, data = coded
    assert "damaged" in refusal(model, data[:len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    assert "damaged" in refusal(model, bytes(flipped))
    assert "damaged" in refusal(model, data[:9])


def test_fuzzed_files_are_refused_cleanly_or_decoded_exactly(coded):
    model, images, data = coded
    rng = random.Random(17)
    body = data[:-codec.DIGEST]
    refused = 0
    for _ in range(300):
        edited = bytearray(body)
        kind = rng.choice(["byte", "bit", "truncate", "insert", "delete"])
        at = rng.randrange(len(codec.MAGIC) + 1, len(edited))
        if kind == "byte":
            edited[at] = rng.randrange(256)
        elif kind == "bit":
            edited[at] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del edited[at:]
        elif kind == "insert":
            edited[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        else:
            del edited[at:at + rng.randint(1, 3)]
        try:
            decoded = codec.decode_file(model, seal(bytes(edited)))
        except codec.CodecError as e:
            assert str(e) and "\n" not in str(e), (kind, at)
            refused += 1
            continue
        assert torch.equal(decoded.images, images), (kind, at)  # anything that decodes decodes exactly
        assert decoded.names is None or all(codec.name_problem(n) is None for n in decoded.names)
    assert refused > 250


def test_an_opaque_alpha_channel_is_recorded_and_given_back(coded):
    """Images that came with a fully opaque alpha channel are coded without it; the file records which did."""
    model, images, _ = coded
    alpha = [True, False, False, True, True]
    data = codec.encode(model, images, alpha=alpha)
    decoded = codec.decode_file(model, data)
    assert torch.equal(decoded.images, images) and decoded.alpha == tuple(alpha)
    assert codec.decode_file(model, codec.encode(model, images)).alpha is None
    assert len(codec.encode(model, images, alpha=[False] * 5)) == len(codec.encode(model, images))
