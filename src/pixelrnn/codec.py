"""Lossless image compression with a trained model and an arithmetic (range) coder.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) notes that an exact likelihood model is a
compressor: with an arithmetic coder, an image x takes about -log2 p(x) bits. Here every value is coded, in model
order, with its conditional distribution from the fast step-wise path (:func:`pixelrnn.generate.walk`), by
constriction's range coder (a queue: first in, first out). constriction quantises each distribution to integer
frequencies deterministically and gives every value at least the smallest frequency, so no value is impossible.

Encoder and decoder compute the probabilities through the same code path, on the CPU, in float64 after the model's
own dtype, with one thread, on batches of the same size: on the same machine and software they are bit-identical.
A file decoded elsewhere with other floating-point behaviour could differ; the checksum of the decoded images
catches that, so a wrong image is never returned in silence.

File layout (a varint is unsigned LEB128, 7 bits a byte, low bits first)::

    b"PRNN"  version (varint: 2 without names, 3 with them)
    count  channels  height  width  levels  batch  payload words     (seven varints)
    model fingerprint (8 bytes)  checksum of the decoded images (8 bytes)
    version 3 only: per image, its name's length in bytes (varint) and the name (UTF-8)
    payload (u32 words, little-endian)
    checksum of everything above (8 bytes)

A file without names is version 2, byte for byte as before names existed, so files written earlier still decode
and a file that needs no names costs nothing more: for one 8x8 image of 17 levels the fixed overhead is 36 bytes.
A name is what ``pixelrnn decompress`` writes as NAME.png, so a stored name must be a safe base name
(:func:`name_problem`): a file edited to hold ``../x`` is refused before anything is written.

Both checksums are BLAKE2b cut to 8 bytes: plenty to catch accidents. They stop no one who edits a file on purpose,
so the reader also validates every header field (its range, and its consistency with the others and with the
file's length) before it allocates anything. Its one bound that a valid model could meet in honest use, a file
coding more than 64x below the raw size of its values, is kept by the encoder, which pads such a payload with unread
words (at most 1/64 of the raw size).
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import contextmanager
from typing import NamedTuple

import constriction
import numpy as np
import torch

from .errors import CodecError, ConfigError, ImageError, PixelRNNError  # noqa: F401  (PixelRNNError: re-exported)
from .devices import num_threads
from .generate import walk

__all__ = ["BATCH", "CodecError", "Header", "NAMED_VERSION", "VERSION", "decode", "decode_named", "encode",
           "fingerprint", "name_problem", "read_header"]

MAGIC = b"PRNN"
VERSION = 2  # a file without names
NAMED_VERSION = 3  # version 2 with the images' names between the digests and the payload
MAX_NAME = 251  # bytes of UTF-8: NAME.png then fits the 255 bytes that common file systems allow a file name
BATCH = 16  # images coded together; stored in the header, since batch composition must match when decoding
DIGEST = 8  # bytes of each checksum and of the fingerprint
MAX_VARINT = 9  # bytes: 63 bits, far beyond any real count or size, and a bound on how long a field can be
MAX_COMPRESSION = 64  # a payload holds at least 1/64 of its values' raw bits (see the docstring)
FIELDS = ("count", "channels", "height", "width", "levels", "batch", "payload words")


class Header(NamedTuple):
    """What a compressed file says about itself, validated by :func:`read_header`."""

    count: int
    shape: tuple[int, int, int]  # (C, H, W)
    levels: int
    batch: int
    payload_words: int
    model: bytes  # the first bytes of the model's fingerprint
    images: bytes  # checksum of the decoded images
    payload_offset: int
    names: tuple[str, ...] | None = None  # one per image (version 3), each checked by name_problem; else None

    @property
    def payload_bytes(self) -> int:
        return 4 * self.payload_words


def fingerprint(model) -> str:
    """sha256 of the model's config and weights: a file can only be decoded by the model that encoded it."""
    digest = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@contextmanager
def _deterministic():
    """One thread: a matrix product then sums in the same order in the encoder and the decoder."""
    with num_threads(1), torch.no_grad():
        yield


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).numpy()


def _code(model, x: torch.Tensor, step, progress: bool, desc: str) -> None:
    """Walk ``x`` in model order; ``step(values_or_None, probabilities)`` encodes or decodes each value."""

    def choose(c, i, j, logits):
        return step(x[:, c, i, j], _probabilities(logits))

    walk(model, x, lambda c, i, j: True, choose, progress=progress, desc=desc)


def _check_model(model) -> None:
    if model.settings.num_classes:  # the file format stores no class, and without one the model codes poorly
        raise ConfigError(f"the model is class-conditional ({model.settings.num_classes} classes), but a compressed file "
                          "stores no class, and without one the model codes poorly; use an unconditional model, "
                          "e.g. fashion-pixelcnn")


def _check_images(model, images: torch.Tensor) -> torch.Tensor:
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or tuple(images.shape[1:]) != model.image_shape:
        raise ImageError(f"images of shape {tuple(images.shape[1:])} do not fit this model, which codes "
                         f"{model.image_shape} (C, H, W) images; resize them or use a model trained on this size")
    if images.dtype.is_floating_point or len(images) == 0:
        raise ImageError("give one or more images of integer values")
    if images.min() < 0 or images.max() >= model.levels:
        raise ImageError(f"image values must lie in [0, {model.levels}); these reach {int(images.max())}")
    return images.to(torch.long)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST).digest()


def _images_digest(images: torch.Tensor) -> bytes:
    return _digest(images.to(torch.int64).numpy().astype("<i8").tobytes())


def _min_payload_words(values: int, levels: int) -> int:
    """The fewest payload words a file of ``values`` values may have: 1/MAX_COMPRESSION of their raw bits."""
    return max(1, math.ceil(values * math.log2(levels) / (MAX_COMPRESSION * 32)))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, offset: int, field: str) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it; at most MAX_VARINT bytes, in its one shortest form."""
    value = 0
    for k in range(MAX_VARINT):
        if offset + k >= len(data):
            raise CodecError(f"the file's header is invalid: it ends inside the field {field!r}")
        byte = data[offset + k]
        value |= (byte & 0x7F) << (7 * k)
        if not byte & 0x80:
            if byte == 0 and k > 0:
                raise CodecError(f"the file's header is invalid: the field {field!r} is not in its shortest form")
            return value, offset + k + 1
    raise CodecError(f"the file's header is invalid: the field {field!r} is longer than {MAX_VARINT} bytes")


def name_problem(name: str) -> str | None:
    """Why ``name`` (without the ``.png`` that decoding adds) cannot be an image's stored name, or None if it can.

    A stored name becomes the file NAME.png in the folder the user decodes into, so it must be one plain base name:
    no directory part, no ``.`` or ``..``, no NUL, not empty, and at most :data:`MAX_NAME` bytes of UTF-8.
    """
    if not name:
        return "is empty"
    if "/" in name or "\\" in name:
        return "has a directory part"
    if name in (".", ".."):
        return f"is {name!r}, a folder, not a file"
    if "\0" in name:
        return "holds a NUL character"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a file name that the file system handed over as undecodable bytes
        return "is not valid UTF-8"
    return f"is longer than {MAX_NAME} bytes" if size > MAX_NAME else None


def _clashing(names) -> str | None:
    """A name that another one repeats, ignoring case (a case-insensitive file system would write both to one file)."""
    seen = set()
    return next((name for name in names if name.casefold() in seen or seen.add(name.casefold())), None)


def _names_field(names, count: int) -> bytes:
    """The names as version 3 stores them, each checked first; a problem is a ConfigError that names the name."""
    names = list(names)
    if len(names) != count:
        raise ConfigError(f"give one name per image ({count}), not {len(names)}")
    for name in names:
        if problem := name_problem(str(name)):
            raise ConfigError(f"the image name {name!r} {problem}; rename the file, or leave the names out")
    if (clash := _clashing(names)) is not None:
        raise ConfigError(f"two images have the name {clash!r} (ignoring case), and each would be decoded to "
                          f"{clash}.png; rename one, or leave the names out")
    return b"".join(_varint(len(name.encode())) + name.encode() for name in names)


def _read_names(body: bytes, offset: int, count: int) -> tuple[tuple[str, ...], int]:
    """The ``count`` names at ``offset``, validated, and the offset after them. Each takes at least two bytes, so a
    forged huge count ends at the body's end, not in a long loop."""
    names = []
    for k in range(count):
        length, offset = _read_varint(body, offset, f"length of name {k}")
        if offset + length > len(body):
            raise CodecError(f"the file's header is invalid: name {k} ({length} bytes) runs past the end of the file")
        try:
            name = body[offset:offset + length].decode("utf-8")
        except UnicodeDecodeError:
            raise CodecError(f"the file's header is invalid: name {k} is not valid UTF-8") from None
        if problem := name_problem(name):
            raise CodecError(f"the file's header holds an unsafe image name: name {k} {problem} (the file was "
                             "edited, or not written by `pixelrnn compress`)")
        names.append(name)
        offset += length
    if (clash := _clashing(names)) is not None:
        raise CodecError(f"the file's header holds the image name {clash!r} twice (ignoring case); decoding would "
                         "write one image over another")
    return tuple(names), offset


def encode(model, images: torch.Tensor, names=None, progress: bool = False) -> bytes:
    """Compress images losslessly with ``model``, and optionally their names.

    Args:
        model: a trained model on the CPU.
        images: integer [N, C, H, W] (or one [C, H, W]) with values in [0, K).
        names: one name per image (e.g. the stems of their files), stored so that decoding gives them back; each
            must pass :func:`name_problem`, and no two may be equal ignoring case. None stores none (version 2).
        progress: show a progress bar.

    Returns:
        The file's bytes.

    Raises:
        ConfigError: the model is class-conditional (a file stores no class to condition on), or a name is unsafe
            or repeated.
        ImageError: the images do not fit the model.
    """
    _check_model(model)
    images = _check_images(model, images.cpu())
    named = b"" if names is None else _names_field(names, len(images))  # refused before the long work
    model = model.eval()
    encoder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)
    batch = min(BATCH, len(images))  # the same chunks as BATCH would give; and batch <= count always holds

    def step(values, probabilities):
        encoder.encode(values.numpy().astype(np.int32), family, probabilities)
        return values

    with _deterministic():
        for first in range(0, len(images), batch):
            _code(model, images[first:first + batch].clone(), step, progress, "compressing")
    words = encoder.get_compressed().astype("<u4")
    # The decoder never reads past the words the coder needs, so zeros appended to a tiny payload are harmless.
    short = _min_payload_words(images.numel(), model.levels) - len(words)
    payload = words.tobytes() + bytes(4 * max(0, short))
    fields = (len(images), *model.image_shape, model.levels, batch, len(payload) // 4)
    version = VERSION if names is None else NAMED_VERSION
    body = b"".join([MAGIC, _varint(version), *map(_varint, fields), bytes.fromhex(fingerprint(model))[:DIGEST],
                     _images_digest(images), named, payload])
    return body + _digest(body)


def _check_version(data: bytes) -> int:
    """The file's format version, after its magic bytes: one this reader knows, or a CodecError."""
    if len(data) < len(MAGIC) + 1 or data[:len(MAGIC)] != MAGIC:
        raise CodecError("not a pixelrnn compressed file (bad magic bytes); give a file written by "
                         "`pixelrnn compress`")
    try:
        version, _ = _read_varint(data, len(MAGIC), "version")
    except CodecError:
        raise CodecError("the file's format version is unreadable; it is damaged") from None
    if version not in (VERSION, NAMED_VERSION):
        raise CodecError(f"the file has format version {version}; this pixelrnn reads version {VERSION} (without "
                         f"names) and {NAMED_VERSION} (with names) only (decode it with the pixelrnn release that "
                         "wrote it, or compress the images again)")
    return version


def _check_fields(header: Header, body_length: int) -> None:
    """Ranges and consistency, each refusal naming its field; after this, allocations follow the file's length."""
    c, h, w = header.shape
    for field, value, low in [("count", header.count, 1), ("channels", c, 1), ("height", h, 1), ("width", w, 1),
                              ("levels", header.levels, 2), ("batch", header.batch, 1)]:
        if value < low:
            raise CodecError(f"the file's header is invalid: {field} is {value}, below {low}")
    if header.batch > header.count:
        raise CodecError(f"the file's header is invalid: batch {header.batch} is larger than count {header.count}")
    if header.payload_offset + header.payload_bytes != body_length:
        raise CodecError(f"the file's header is invalid: payload words {header.payload_words} "
                         f"({header.payload_bytes} bytes) but the file holds "
                         f"{body_length - header.payload_offset} payload bytes")
    values = header.count * c * h * w
    if header.payload_words < _min_payload_words(values, header.levels):
        raise CodecError(f"the file's header is invalid: count {header.count} of {c}x{h}x{w} images with "
                         f"{header.levels} levels cannot fit in {header.payload_bytes} payload bytes")


def read_header(data: bytes) -> Header:
    """Check a file's framing, checksum and header fields, and return the header.

    Raises:
        CodecError: not such a file, another format version, a damaged file, an invalid header field (named), or
            an unsafe image name.
    """
    version = _check_version(data)
    minimum = len(MAGIC) + 1 + len(FIELDS) + 3 * DIGEST
    if len(data) < minimum:
        raise CodecError(f"the file is damaged: it is {len(data)} bytes long, shorter than any pixelrnn compressed "
                         f"file ({minimum} bytes); it was probably truncated")
    body, checksum = data[:-DIGEST], data[-DIGEST:]
    if _digest(body) != checksum:
        raise CodecError("the file is damaged (truncated or altered): its checksum does not match its contents")
    offset = len(MAGIC) + 1
    values = []
    for field in FIELDS:
        value, offset = _read_varint(body, offset, field)
        values.append(value)
    if offset + 2 * DIGEST > len(body):
        raise CodecError("the file's header is invalid: it ends inside the model fingerprint or image checksum")
    count, c, h, w, levels, batch, words = values
    digests, offset = body[offset:offset + 2 * DIGEST], offset + 2 * DIGEST
    names = None
    if version == NAMED_VERSION:
        names, offset = _read_names(body, offset, count)
    header = Header(count, (c, h, w), levels, batch, words, digests[:DIGEST], digests[DIGEST:], offset, names)
    _check_fields(header, len(body))
    return header


# What a payload that decodes wrongly tells us; its trailing checksum was valid, so it is no accident in storage.
_EDITED_OR_ELSEWHERE = ("either the file was edited after it was written, or this machine or software version "
                        "computes the model's probabilities differently from the one that compressed it; decode it "
                        "where it was compressed, with the same pixelrnn and torch")


def decode(model, data: bytes, progress: bool = False) -> torch.Tensor:
    """Decompress a file written by :func:`encode`: its int64 images [N, C, H, W], as :func:`decode_named` gives."""
    return decode_named(model, data, progress)[0]


def decode_named(model, data: bytes, progress: bool = False) -> tuple[torch.Tensor, tuple[str, ...] | None]:
    """Decompress a file written by :func:`encode` with the same model, and the names stored with its images.

    Args:
        model: the model that encoded the file, on the CPU.
        data: the file's bytes.
        progress: show a progress bar.

    Returns:
        ``(images, names)``: int64 images [N, C, H, W], exactly those that were encoded, and their N names (each a
        safe base name, see :func:`name_problem`), or None for a file stored without names.

    Raises:
        ConfigError: the model is class-conditional (no file is coded with one).
        CodecError: the file is damaged, invalid, of another version or model, holds an unsafe name, or decodes
            to other images.
    """
    _check_model(model)
    header = read_header(data)
    if header.model != bytes.fromhex(fingerprint(model))[:DIGEST]:
        raise CodecError("the file was compressed with another model (its fingerprint differs); decode it with "
                         "the checkpoint that compressed it")
    if header.shape != model.image_shape or header.levels != model.levels:
        raise CodecError(f"the file holds {header.shape} images with {header.levels} levels, but this model codes "
                         f"{model.image_shape} images with {model.levels} levels")
    words = np.frombuffer(data, dtype="<u4", count=header.payload_words, offset=header.payload_offset)
    decoder = constriction.stream.queue.RangeDecoder(words.astype(np.uint32))
    family = constriction.stream.model.Categorical(perfect=False)
    model = model.eval()

    def step(values, probabilities):
        try:
            symbols = decoder.decode(family, probabilities)
        except AssertionError:  # constriction's word for a payload that these probabilities cannot have produced
            raise CodecError(f"the payload cannot be decoded with this model: {_EDITED_OR_ELSEWHERE}") from None
        return torch.from_numpy(symbols.astype(np.int64))

    images = torch.zeros(header.count, *model.image_shape, dtype=torch.long)  # bounded by _check_fields
    with _deterministic():
        for first in range(0, len(images), header.batch):
            _code(model, images[first:first + header.batch], step, progress, "decompressing")
    if _images_digest(images) != header.images:
        raise CodecError(f"the decoded images do not match the checksum stored in the file: {_EDITED_OR_ELSEWHERE}")
    return images, header.names
