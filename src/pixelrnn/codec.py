"""Lossless image compression with a trained model and an arithmetic (range) coder.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) notes that an exact likelihood model is a
compressor: with an arithmetic coder, an image takes about -log2 p(x) bits. Every value is coded, in model order,
with its conditional distribution, by constriction's range coder (a queue: first in, first out).

Two paths, told apart by the file's format version:

- **Version 4, the exact path** (:mod:`pixelrnn.exact`), for every family (PixelCNN, Row LSTM, Diagonal BiLSTM,
  multi-scale over each, class-conditional or not): the model runs in integers, so every frequency table is
  bit-identical on any CPU, GPU, BLAS and thread count. The encoder takes all tables of a group of images from one
  full-image pass; the decoder walks value by value, as many groups at once as memory allows. A class-conditional
  model stores each image's class in the file, coded with the uniform distribution over the classes. The file
  records the integer model's fingerprint: it decodes with exactly those integers.
- **Versions 2 and 3, the float path**, for every file written before version 4 (and ``path="float"``): the
  probabilities come from the float step-wise path (:func:`pixelrnn.generate.walk`), on the CPU, in float64 after
  the model's own dtype, with one thread, on batches of the same size. On the same machine and software they are
  bit-identical; a file decoded elsewhere with other floating-point behaviour could differ, and the checksum of the
  decoded images catches that, so a wrong image is never returned in silence.

File layout (a varint is unsigned LEB128, 7 bits a byte, low bits first)::

    b"PRNN"  version (varint: 2 without names, 3 with them, 4 the exact path)
    version 4 only: flags (varint: 1 names, 2 class labels, 4 opaque alpha)
    count  channels  height  width  levels  batch  payload words     (seven varints)
    version 4 with labels only: classes (varint)
    model fingerprint (8 bytes)
    version 4 only: integer model fingerprint (8 bytes)
    checksum of the decoded images (8 bytes; version 4: of the images and their labels)
    versions 3 and 4 with names: per image, its name's length in bytes (varint) and the name (UTF-8)
    version 4 with opaque alpha: one bit per image (ceil(count / 8) bytes, image k in bit k % 8 of byte k // 8):
        the image came with an alpha channel that was fully opaque, which decoding gives back
    version 4 only: per group of ``batch`` images, the length of its stream in words (varint)
    payload (u32 words, little-endian; version 4: the groups' streams one after another)
    checksum of everything above (8 bytes)

A file without names and written by the float path is version 2, byte for byte as before names existed, so files
written earlier still decode; for one 8x8 image of 17 levels its fixed overhead is 36 bytes (version 4: 46).
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
import math
from contextlib import contextmanager
from typing import NamedTuple

import constriction
import numpy as np
import torch

from . import exact
from .devices import num_threads
from .errors import CodecError, ConfigError, ImageError, PixelRNNError  # noqa: F401  (PixelRNNError: re-exported)
from .exact.coding import decode_streams, encode_streams
from .exact.store import model_fingerprint as fingerprint
from .generate import walk

__all__ = ["BATCH", "CodecError", "Decoded", "EXACT_BATCH", "EXACT_VERSION", "Header", "NAMED_VERSION", "VERSION",
           "check_header", "check_inputs", "decode", "decode_file", "decode_named", "encode", "fingerprint",
           "model_digest", "name_problem", "read_header"]

MAGIC = b"PRNN"
VERSION = 2  # a file without names
NAMED_VERSION = 3  # version 2 with the images' names between the digests and the payload
EXACT_VERSION = 4  # the exact path: integer model, groups of images in independent streams
NAMES_FLAG, LABELS_FLAG, ALPHA_FLAG = 1, 2, 4  # the flags of version 4
MAX_NAME = 251  # bytes of UTF-8: NAME.png then fits the 255 bytes that common file systems allow a file name
BATCH = 16  # images coded together; stored in the header, since batch composition must match when decoding
EXACT_BATCH = 64  # images per stream of version 4: each stream costs a few bytes; any number decode together
MAX_CLASSES = 2**24  # constriction's uniform model
PATHS = ("auto", "exact", "float")
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
    names: tuple[str, ...] | None = None  # one per image (versions 3, 4), each checked by name_problem; else None
    version: int = VERSION
    integer: bytes | None = None  # version 4: the first bytes of the integer model's fingerprint
    classes: int | None = None  # version 4 with labels: the number of classes they are coded over
    streams: tuple[int, ...] | None = None  # version 4: each group's stream length in words
    alpha: tuple[bool, ...] | None = None  # version 4: per image, whether it came with a fully opaque alpha channel

    @property
    def payload_bytes(self) -> int:
        return 4 * self.payload_words


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
    """The float path stores no class; without one a class-conditional model codes poorly."""
    if model.settings.num_classes:
        raise ConfigError(f"the model is class-conditional ({model.settings.num_classes} classes), but the float path "
                          "(format versions 2 and 3) stores no class; code with the exact path (the default), whose "
                          "files store each image's class, as for fashion-pixelcnn-classes")


def _check_labels(model, labels, count: int) -> torch.Tensor | None:
    """The images' classes as int64 [count] for a class-conditional model (one label is repeated), else None."""
    classes = model.settings.num_classes
    if not classes:
        if labels is not None:
            raise ConfigError("the model is not class-conditional; give no class labels (drop --class)")
        return None
    if labels is None:
        raise ConfigError(f"the model is class-conditional ({classes} classes): give each image's class, with "
                          "--class N for all of them, or compress a data set's split, whose labels are used")
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or len(labels) not in (1, count):
        raise ConfigError(f"give one class label, or one per image ({count}), as whole numbers")
    if labels.min() < 0 or labels.max() >= classes:
        raise ConfigError(f"class labels must lie in [0, {classes}), i.e. 0..{classes - 1}, not "
                          f"{labels.tolist()[:8]}")
    return labels.long().cpu().expand(count).clone()


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


def _images_digest(images: torch.Tensor, labels: torch.Tensor | None = None) -> bytes:
    data = images.to(torch.int64).numpy().astype("<i8").tobytes()
    return _digest(data if labels is None else data + labels.to(torch.int64).numpy().astype("<i8").tobytes())


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


def encode(model, images: torch.Tensor, names=None, progress: bool = False, labels=None, integer=None,
           device: str | torch.device | None = None, path: str = "auto", alpha=None) -> bytes:
    """Compress images losslessly with ``model``, and optionally their names.

    Args:
        model: a trained model.
        images: integer [N, C, H, W] (or one [C, H, W]) with values in [0, K).
        names: one name per image (e.g. the stems of their files), stored so that decoding gives them back; each
            must pass :func:`name_problem`, and no two may be equal ignoring case. None stores none.
        progress: show a progress bar.
        labels: the images' classes [N] (or one for all), for a class-conditional model; stored in the file.
        integer: the model's integer form (:func:`pixelrnn.exact.for_checkpoint`); default: computed from the
            weights (:func:`pixelrnn.exact.quantize`), which gives the same integers.
        device: where the exact path runs ("cpu", "cuda", ...; default: the CPU); the file is the same.
        alpha: per image, whether it came with a fully opaque alpha channel (dropped before coding, since it holds
            nothing): stored in the file (version 4), so that decoding gives the channel back.
        path: "auto" (the exact path, format version 4, for every family that has an integer form, which every
            registered family has; else the float path, versions 2 and 3), "exact" or "float".

    Returns:
        The file's bytes.

    Raises:
        ConfigError: a class-conditional model on the float path, missing or invalid labels, an unknown path, or a
            name that is unsafe or repeated.
        ImageError: the images do not fit the model.
    """
    if _uses_float_path(model, path):
        if labels is not None:
            _check_model(model)
        if alpha is not None and any(alpha):
            raise ConfigError("only the exact path (format version 4) records an opaque alpha channel")
        return _encode_float(model, images, names, progress)
    return _encode_exact(model, images, names, progress, labels, integer, device, alpha)


def _uses_float_path(model, path: str) -> bool:
    if path not in PATHS:
        raise ConfigError(f"unknown coding path {path!r}; choose one of {', '.join(PATHS)}")
    if path == "exact" and not exact.supports(model):
        raise ConfigError(f"the {model.config['model']} family has no exact integer form yet; use path='float'")
    return path == "float" or not exact.supports(model)


def check_inputs(model, images: torch.Tensor, names=None, labels=None, path: str = "auto") -> None:
    """Raise what :func:`encode` would raise for these inputs, before any long work (the same checks it makes)."""
    if _uses_float_path(model, path):
        _check_model(model)
    else:
        _check_labels(model, labels, len(images))
    _check_images(model, images.cpu())
    if names is not None:
        _names_field(names, len(images))


def _integer_for(model, integer, device) -> exact.IntegerModel:
    integer = exact.quantize(model) if integer is None else integer
    return integer.to(torch.device("cpu") if device is None else torch.device(device))


def _integer_digest(integer: exact.IntegerModel) -> bytes:
    return bytes.fromhex(exact.fingerprint(integer))[:DIGEST]


def _alpha_field(alpha, count: int) -> bytes:
    """One bit per image: whether it came with a fully opaque alpha channel (decoding writes one back)."""
    alpha = [bool(a) for a in alpha]
    if len(alpha) != count:
        raise ConfigError(f"give one alpha flag per image ({count}), not {len(alpha)}")
    return bytes(sum(1 << bit for bit in range(8) if k + bit < count and alpha[k + bit]) for k in range(0, count, 8))


def _encode_exact(model, images, names, progress, labels, integer, device, alpha=None) -> bytes:
    images = _check_images(model, images.cpu())
    labels = _check_labels(model, labels, len(images))
    named = b"" if names is None else _names_field(names, len(images))  # refused before the long work
    integer = _integer_for(model, integer, device)
    batch = min(EXACT_BATCH, len(images))
    streams = encode_streams(integer, images, labels, batch, progress)
    words = sum(len(stream) for stream in streams)
    # The decoder never reads past its streams, so zeros appended to a tiny payload are harmless.
    pad = max(0, _min_payload_words(images.numel(), model.levels) - words)
    payload = b"".join(stream.astype("<u4").tobytes() for stream in streams) + bytes(4 * pad)
    has_alpha = alpha is not None and any(alpha)  # a file of images without alpha costs nothing more
    flags = ((NAMES_FLAG if names is not None else 0) | (LABELS_FLAG if labels is not None else 0)
             | (ALPHA_FLAG if has_alpha else 0))
    opaque = _alpha_field(alpha, len(images)) if has_alpha else b""
    fields = (len(images), *model.image_shape, model.levels, batch, words + pad)
    classes = [] if labels is None else [_varint(model.settings.num_classes)]
    body = b"".join([MAGIC, _varint(EXACT_VERSION), _varint(flags), *map(_varint, fields), *classes,
                     model_digest(model), _integer_digest(integer),
                     _images_digest(images, labels), named, opaque, *(_varint(len(s)) for s in streams), payload])
    return body + _digest(body)


def _encode_float(model, images: torch.Tensor, names, progress: bool) -> bytes:
    """Versions 2 and 3: the float step-wise path, on the CPU, one thread."""
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
    body = b"".join([MAGIC, _varint(version), *map(_varint, fields), model_digest(model),
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
    if version not in (VERSION, NAMED_VERSION, EXACT_VERSION):
        raise CodecError(f"the file has format version {version}; this pixelrnn reads version {VERSION} (without "
                         f"names), {NAMED_VERSION} (with names) and {EXACT_VERSION} (the exact path) only (decode it "
                         "with the pixelrnn release that wrote it, or compress the images again)")
    return version


def _check_ranges(count: int, shape: tuple[int, int, int], levels: int, batch: int) -> None:
    c, h, w = shape
    for field, value, low in [("count", count, 1), ("channels", c, 1), ("height", h, 1), ("width", w, 1),
                              ("levels", levels, 2), ("batch", batch, 1)]:
        if value < low:
            raise CodecError(f"the file's header is invalid: {field} is {value}, below {low}")
    if batch > count:
        raise CodecError(f"the file's header is invalid: batch {batch} is larger than count {count}")


def _check_fields(header: Header, body_length: int) -> None:
    """Ranges and consistency, each refusal naming its field; after this, allocations follow the file's length."""
    c, h, w = header.shape
    _check_ranges(header.count, header.shape, header.levels, header.batch)
    if header.payload_offset + header.payload_bytes != body_length:
        raise CodecError(f"the file's header is invalid: payload words {header.payload_words} "
                         f"({header.payload_bytes} bytes) but the file holds "
                         f"{body_length - header.payload_offset} payload bytes")
    values = header.count * c * h * w
    if header.payload_words < _min_payload_words(values, header.levels):
        raise CodecError(f"the file's header is invalid: count {header.count} of {c}x{h}x{w} images with "
                         f"{header.levels} levels cannot fit in {header.payload_bytes} payload bytes")


def _check_streams(header: Header) -> None:
    """Version 4: the streams fill the payload, but for the zero words that pad a tiny payload to the minimum."""
    used = sum(header.streams)
    values = header.count * math.prod(header.shape)
    if used > header.payload_words:
        raise CodecError(f"the file's header is invalid: its streams hold {used} words, more than the "
                         f"{header.payload_words} payload words")
    if used < header.payload_words != _min_payload_words(values, header.levels):
        raise CodecError(f"the file's header is invalid: {header.payload_words - used} payload words belong to no "
                         "stream")


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
    flags = 0
    if version == EXACT_VERSION:
        flags, offset = _read_varint(body, offset, "flags")
        if flags & ~(NAMES_FLAG | LABELS_FLAG | ALPHA_FLAG):
            raise CodecError(f"the file's header is invalid: unknown flags {flags}")
    values = []
    for field in FIELDS:
        value, offset = _read_varint(body, offset, field)
        values.append(value)
    count, c, h, w, levels, batch, words = values
    classes = None
    if flags & LABELS_FLAG:
        classes, offset = _read_varint(body, offset, "classes")
        if not 1 <= classes <= MAX_CLASSES:
            raise CodecError(f"the file's header is invalid: classes is {classes}, outside [1, {MAX_CLASSES}]")
    digests = 3 if version == EXACT_VERSION else 2
    if offset + digests * DIGEST > len(body):
        raise CodecError("the file's header is invalid: it ends inside the model fingerprint or image checksum")
    model, offset = body[offset:offset + DIGEST], offset + DIGEST
    integer = None
    if version == EXACT_VERSION:
        integer, offset = body[offset:offset + DIGEST], offset + DIGEST
    images, offset = body[offset:offset + DIGEST], offset + DIGEST
    names = None
    if version == NAMED_VERSION or flags & NAMES_FLAG:
        names, offset = _read_names(body, offset, count)
    alpha = None
    if flags & ALPHA_FLAG:
        if c not in (1, 3):
            raise CodecError(f"the file's header is invalid: alpha flags for images of {c} channels")
        size = -(-count // 8)
        if offset + size > len(body):
            raise CodecError("the file's header is invalid: it ends inside the images' alpha flags")
        bits = body[offset:offset + size]
        alpha, offset = tuple(bool(bits[k // 8] >> (k % 8) & 1) for k in range(count)), offset + size
    streams = None
    if version == EXACT_VERSION:
        _check_ranges(count, (c, h, w), levels, batch)  # before the groups are counted
        lengths = []
        for k in range(-(-count // batch)):  # each length takes a byte at least: bounded by the file's length
            length, offset = _read_varint(body, offset, f"length of stream {k}")
            lengths.append(length)
        streams = tuple(lengths)
    header = Header(count, (c, h, w), levels, batch, words, model, images, offset, names, version, integer, classes,
                    streams, alpha)
    _check_fields(header, len(body))
    if streams is not None:
        _check_streams(header)
    return header


# What a payload that decodes wrongly tells us; its trailing checksum was valid, so it is no accident in storage.
_EDITED_OR_ELSEWHERE = ("either the file was edited after it was written, or this machine or software version "
                        "computes the model's probabilities differently from the one that compressed it; decode it "
                        "where it was compressed, with the same pixelrnn and torch")


class Decoded(NamedTuple):
    """What a compressed file gives back."""

    images: torch.Tensor  # int64 [N, C, H, W]
    names: tuple[str, ...] | None  # one per image, or None for a file stored without names
    labels: torch.Tensor | None  # int64 [N], the classes stored by a class-conditional model's file; else None
    alpha: tuple[bool, ...] | None = None  # per image, whether it came with a fully opaque alpha channel


def decode(model, data: bytes, progress: bool = False, integer=None,
           device: str | torch.device | None = None) -> torch.Tensor:
    """Decompress a file written by :func:`encode`: its int64 images [N, C, H, W], as :func:`decode_file` gives."""
    return decode_file(model, data, progress, integer, device).images


def decode_named(model, data: bytes, progress: bool = False, integer=None,
                 device: str | torch.device | None = None) -> tuple[torch.Tensor, tuple[str, ...] | None]:
    """Decompress a file written by :func:`encode`: ``(images, names)``, as :func:`decode_file` gives."""
    decoded = decode_file(model, data, progress, integer, device)
    return decoded.images, decoded.names


def decode_file(model, data: bytes, progress: bool = False, integer=None,
                device: str | torch.device | None = None) -> Decoded:
    """Decompress a file written by :func:`encode` with the same model: its images, names and classes.

    Args:
        model: the model that encoded the file.
        data: the file's bytes.
        progress: show a progress bar.
        integer: for a version-4 file, the integer model it was written with (default: computed from the weights,
            which gives the same integers as :func:`pixelrnn.exact.quantize` gave the encoder).
        device: where a version-4 file is decoded (default: the CPU); versions 2 and 3 decode on the CPU, one
            thread, as they were encoded.

    Returns:
        :class:`Decoded`: int64 images [N, C, H, W], exactly those that were encoded; their N names (each a safe
        base name, see :func:`name_problem`) or None; their classes (class-conditional models) or None.

    Raises:
        ConfigError: a version 2 or 3 file with a class-conditional model (no such file is coded with one).
        CodecError: the file is damaged, invalid, of another version, model or integer model, holds an unsafe
            name, or decodes to other images.
    """
    header = read_header(data)
    check_header(model, header)
    if header.version == EXACT_VERSION:
        return _decode_exact(model, data, header, progress, integer, device)
    return Decoded(_decode_float(model, data, header, progress), header.names, None)


def model_digest(model) -> bytes:
    """What a file records of the model that compressed it: the first bytes of its fingerprint."""
    return bytes.fromhex(fingerprint(model))[:DIGEST]


def check_header(model, header: Header) -> None:
    """Refuse a file that ``model`` cannot decode (another model, shape, or path), before any long work.

    Raises:
        ConfigError: a version 2 or 3 file with a class-conditional model.
        CodecError: the file was written by another model, or by a path this model's family lacks.
    """
    if header.version != EXACT_VERSION:
        _check_model(model)
    if header.model != model_digest(model):
        raise CodecError("the file was compressed with another model (its fingerprint differs); decode it with "
                         "the checkpoint that compressed it")
    if header.shape != model.image_shape or header.levels != model.levels:
        raise CodecError(f"the file holds {header.shape} images with {header.levels} levels, but this model codes "
                         f"{model.image_shape} images with {model.levels} levels")
    if header.version == EXACT_VERSION and not exact.supports(model):
        raise CodecError(f"the file was written by the exact path, which the {model.config['model']} family has "
                         "not; decode it with the pixelrnn release that wrote it")
    if header.version == EXACT_VERSION and header.classes != model.settings.num_classes:
        raise CodecError(f"the file stores {header.classes or 'no'} class labels, but the model has "
                         f"{model.settings.num_classes or 'no'} classes; decode it with the model that compressed it")


def _decode_exact(model, data: bytes, header: Header, progress: bool, integer, device) -> Decoded:
    integer = _integer_for(model, integer, device)
    if _integer_digest(integer) != header.integer:
        raise CodecError("the file was compressed with another integer model of this checkpoint (its fingerprint "
                         "differs): another pixelrnn release quantised it differently; decode it with the "
                         f"{exact.FILE} that was stored beside the checkpoint when it was compressed")
    words = np.frombuffer(data, dtype="<u4", count=header.payload_words, offset=header.payload_offset)
    ends = np.cumsum([0, *header.streams])
    streams = [words[a:b].astype(np.uint32) for a, b in zip(ends[:-1], ends[1:])]
    images, labels = decode_streams(integer, streams, header.count, header.batch, progress)
    if _images_digest(images, labels) != header.images:
        raise CodecError("the decoded images do not match the checksum stored in the file: the file was edited "
                         "after it was written")
    return Decoded(images, header.names, labels, header.alpha)


def _decode_float(model, data: bytes, header: Header, progress: bool) -> torch.Tensor:
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
    return images
