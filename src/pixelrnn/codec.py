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

File layout (little-endian)::

    b"PRNN"  u16 version  u32 header length  header (JSON)  payload (u32 words)  sha256 of all the above (32 bytes)

The header holds the model's fingerprint (a hash of its config and weights), the image count, shape and levels,
the batch size, the payload length, and a sha256 of the images.
"""

from __future__ import annotations

import hashlib
import json
import struct
from contextlib import contextmanager

import numpy as np
import torch

from .errors import PixelRNNError
from .generate import walk

MAGIC = b"PRNN"
VERSION = 1
BATCH = 16  # images coded together; stored in the header, since batch composition must match when decoding
_PREFIX = struct.Struct("<4sHI")


class CodecError(PixelRNNError):
    """A compressed file that cannot be decoded: corrupt, truncated, of another version, or of another model."""


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)


def _probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).numpy()


def _code(model, x: torch.Tensor, step, progress: bool, desc: str) -> None:
    """Walk ``x`` in model order; ``step(values_or_None, probabilities)`` encodes or decodes each value."""

    def choose(c, i, j, logits):
        return step(x[:, c, i, j], _probabilities(logits))

    walk(model, x, lambda c, i, j: True, choose, progress=progress, desc=desc)


def _check_images(model, images: torch.Tensor) -> torch.Tensor:
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or tuple(images.shape[1:]) != model.image_shape:
        raise PixelRNNError(f"images of shape {tuple(images.shape[1:])} do not fit this model, which codes "
                            f"{model.image_shape} (C, H, W) images; resize them or use a model trained on this size")
    if images.dtype.is_floating_point or len(images) == 0:
        raise PixelRNNError("give one or more images of integer values")
    if images.min() < 0 or images.max() >= model.levels:
        raise PixelRNNError(f"image values must lie in [0, {model.levels}); these reach {int(images.max())}")
    return images.to(torch.long)


def _images_digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.to(torch.int64).numpy().tobytes()).hexdigest()


def encode(model, images: torch.Tensor, progress: bool = False) -> bytes:
    """Compress images losslessly with ``model``.

    Args:
        model: a trained model on the CPU.
        images: integer [N, C, H, W] (or one [C, H, W]) with values in [0, K).
        progress: show a progress bar.

    Returns:
        The file's bytes.
    """
    import constriction

    images = _check_images(model, images.cpu())
    model = model.eval()
    encoder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)

    def step(values, probabilities):
        encoder.encode(values.numpy().astype(np.int32), family, probabilities)
        return values

    with _deterministic():
        for first in range(0, len(images), BATCH):
            _code(model, images[first:first + BATCH].clone(), step, progress, "compressing")
    payload = encoder.get_compressed().astype("<u4").tobytes()
    header = json.dumps({"model": fingerprint(model), "count": len(images), "shape": list(model.image_shape),
                         "levels": model.levels, "batch": BATCH, "payload_bytes": len(payload),
                         "images_sha256": _images_digest(images)}).encode()
    body = _PREFIX.pack(MAGIC, VERSION, len(header)) + header + payload
    return body + hashlib.sha256(body).digest()


def read_header(data: bytes) -> dict:
    """Check a file's framing and checksum and return its header."""
    if len(data) < _PREFIX.size + 32 or data[:4] != MAGIC:
        raise CodecError("not a pixelrnn compressed file (bad magic bytes); give a file written by "
                         "`pixelrnn compress`")
    _, version, header_length = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise CodecError(f"the file has format version {version}; this pixelrnn reads version {VERSION}")
    body, checksum = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != checksum:
        raise CodecError("the file is truncated or corrupt (its checksum does not match)")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + header_length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CodecError("the file's header is corrupt") from None
    header["payload_offset"] = _PREFIX.size + header_length
    if header["payload_offset"] + header["payload_bytes"] != len(body):
        raise CodecError("the file is truncated or corrupt (its payload has the wrong length)")
    return header


def decode(model, data: bytes, progress: bool = False) -> torch.Tensor:
    """Decompress a file written by :func:`encode` with the same model.

    Returns:
        int64 images [N, C, H, W], exactly those that were encoded.
    """
    import constriction

    header = read_header(data)
    if header["model"] != fingerprint(model):
        raise CodecError("the file was compressed with another model (its fingerprint differs); decode it with "
                         "the checkpoint that compressed it")
    if tuple(header["shape"]) != model.image_shape or header["levels"] != model.levels:
        raise CodecError(f"the file holds {tuple(header['shape'])} images with {header['levels']} levels, "
                         f"not what this model codes")
    offset = header["payload_offset"]
    words = np.frombuffer(data[offset:offset + header["payload_bytes"]], dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    family = constriction.stream.model.Categorical(perfect=False)
    model = model.eval()

    def step(values, probabilities):
        return torch.from_numpy(decoder.decode(family, probabilities).astype(np.int64))

    images = torch.zeros(header["count"], *model.image_shape, dtype=torch.long)
    with _deterministic():
        for first in range(0, len(images), header["batch"]):
            chunk = images[first:first + header["batch"]]
            _code(model, chunk, step, progress, "decompressing")
    if _images_digest(images) != header["images_sha256"]:
        raise CodecError("the decoded images do not match the file's checksum: it was made on a machine whose "
                         "floating-point results differ from this one's; decode it where it was encoded")
    return images
