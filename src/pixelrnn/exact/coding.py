"""The payload of a format-4 file: one range-coder stream per group of images, coded with an integer model.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016): with an arithmetic coder an image takes about
-log2 p(x) bits. The images of a file are split into groups of ``batch`` (the last may be smaller); each group is
one stream of constriction's range coder (a queue: first in, first out) holding

- the group's class labels, for a class-conditional model, each coded with the uniform distribution over the
  classes (log2(classes) bits an image, counted in the file's size);
- then every value of the group's images, in the model's order, and inside one position image by image: the order
  in which a decoder that runs the group in one batch asks for them.

The encoder takes every frequency table from one full-image pass per group of images (:meth:`IntegerModel.
frequencies`), and codes the whole group in one call. The decoder walks value by value with the step-wise pass
(:meth:`IntegerModel.walk`), as many groups at once as memory allows: the groups are independent streams, so a
decoder may batch them as it likes, on any device and thread count, and gets the same integers. It walks on all
threads where its steps are large enough to gain from them (:func:`decode_threads`).
"""

from __future__ import annotations

from typing import Callable

import constriction
import numpy as np
import torch
from tqdm.auto import tqdm

from ..devices import num_threads
from ..errors import CodecError
from ..threads import ThreadFitter
from .model import IntegerModel

# Bytes of step-wise caches a decoding batch may hold, by device type; a GPU gets a share of its free memory.
CPU_DECODE_BYTES = 2**30
# A walk runs on all threads once the largest product of its steps reaches this many FLOPs. Measured on two cores of
# an Intel Xeon (``benchmarks/compression.py --speed``): the shipped PixelCNN's walk gains from a second thread from
# 64 images on (1.17x at 256) and loses at 16; the recurrent models' gain from 16 on (1.2x at 64).
PARALLEL_STEP_FLOPS = 2**21


def decode_threads(integer: IntegerModel, batch: int) -> int:
    """Threads for walking ``batch`` images: the caller's setting where the steps are large enough to gain from
    them, else 1. Exact arithmetic gives the same integers on any thread count, so this changes only the speed."""
    return torch.get_num_threads() if integer.step_flops(batch) >= PARALLEL_STEP_FLOPS else 1


def _categorical():
    return constriction.stream.model.Categorical(perfect=False)


def _groups(count: int, batch: int) -> list[slice]:
    return [slice(first, min(first + batch, count)) for first in range(0, count, batch)]


def _order_index(integer: IntegerModel, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    order = torch.tensor(integer.order(), dtype=torch.long, device=device)  # (V, 3): channel, row, column
    return order[:, 0], order[:, 1], order[:, 2]


def encode_streams(integer: IntegerModel, images: torch.Tensor, labels: torch.Tensor | None, batch: int,
                   progress: bool = False) -> list[np.ndarray]:
    """One stream (uint32 words) per group of ``batch`` images, in order."""
    device = integer.device
    c, i, j = _order_index(integer, device)  # the symbols in coding order
    per_pass = integer.pass_images()  # images per full pass: only speed depends on it
    streams = []
    bar = tqdm(total=len(images), desc="compressing", unit="image", disable=None if progress else True, leave=False)
    for group in _groups(len(images), batch):
        x = images[group].to(device)
        y = None if labels is None else labels[group].to(device)
        tables = None  # (V, b, K): every table, position-major, then image (the order of the stream)
        for k in range(0, len(x), per_pass):
            weights = integer.ordered_weights(x[k:k + per_pass], None if y is None else y[k:k + per_pass])
            if tables is None:
                tables = weights.new_empty(weights.shape[1], len(x), weights.shape[2])
            tables[:, k:k + len(weights)] = weights.transpose(0, 1)
        encoder = constriction.stream.queue.RangeEncoder()
        if y is not None and integer.num_classes > 1:
            encoder.encode(y.to("cpu", torch.int32).numpy(), constriction.stream.model.Uniform(integer.num_classes))
        symbols = x[:, c, i, j].t()  # (V, b)
        encoder.encode(symbols.reshape(-1).to("cpu", torch.int32).numpy(), _categorical(),
                       tables.view(-1, tables.shape[-1]).cpu().numpy())
        streams.append(encoder.get_compressed().astype(np.uint32))
        bar.update(len(x))
    bar.close()
    return streams


def decode_batch_size(integer: IntegerModel, batch: int) -> int:
    """How many images to decode at once: a multiple of ``batch`` whose step-wise caches fit the memory budget."""
    per_image = integer.step_bytes()
    if integer.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(integer.device)
        budget = free // 4
    else:
        budget = CPU_DECODE_BYTES
    return max(batch, budget // max(1, per_image) // batch * batch)


def _failure(what: str) -> CodecError:
    return CodecError(f"the payload cannot be decoded with this integer model ({what}); the file was edited after "
                      "it was written")


def decode_streams(integer: IntegerModel, streams: list[np.ndarray], count: int, batch: int,
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The ``count`` images (int64 [N, C, H, W], on the CPU) and labels (or None) of :func:`encode_streams`."""
    groups = _groups(count, batch)
    if len(groups) != len(streams):
        raise _failure(f"{len(streams)} streams for {len(groups)} groups of images")
    images = torch.zeros(count, *integer.image_shape, dtype=torch.long)
    labels = torch.zeros(count, dtype=torch.long) if integer.num_classes else None
    step = decode_batch_size(integer, batch)
    bar = tqdm(total=count, desc="decompressing", unit="image", disable=None if progress else True, leave=False)
    for first in range(0, len(groups), step // batch):
        part = groups[first:first + step // batch]
        decoders = [constriction.stream.queue.RangeDecoder(s) for s in streams[first:first + len(part)]]
        span = slice(part[0].start, part[-1].stop)
        y = None
        if labels is not None:
            labels[span] = _decode_labels(integer, decoders, part)
            y = labels[span].to(integer.device)
        x = torch.zeros(span.stop - span.start, *integer.image_shape, dtype=torch.long, device=integer.device)
        # All threads where a step's products are large enough to gain from them; one thread below (as generation).
        threads = decode_threads(integer, len(x))
        # On several threads, fitted between values to the cores that other processes leave free: a parallel step
        # waits for a thread whose core another process holds, and the walk is thousands of them.
        with num_threads(threads):
            integer.walk(x, _chooser(decoders, part, span.start, ThreadFitter(threads) if threads > 1 else None), y)
        images[span] = x.cpu()
        bar.update(span.stop - span.start)
    bar.close()
    return images, labels


def _decode_labels(integer: IntegerModel, decoders, part: list[slice]) -> torch.Tensor:
    if integer.num_classes == 1:
        return torch.zeros(part[-1].stop - part[0].start, dtype=torch.long)
    uniform = constriction.stream.model.Uniform(integer.num_classes)
    out = []
    for decoder, group in zip(decoders, part):
        try:
            out.append(torch.from_numpy(decoder.decode(uniform, group.stop - group.start).astype(np.int64)))
        except AssertionError:
            raise _failure("its class labels") from None
    return torch.cat(out)


def _chooser(decoders, part: list[slice], offset: int, fitter: ThreadFitter | None = None) -> Callable:
    """``choose(c, i, j, freq (B, K))`` of :meth:`IntegerModel.walk`: each group's values from its own stream; a
    ``fitter`` gets a look at the load between values."""
    family = _categorical()
    bounds = [(g.start - offset, g.stop - offset) for g in part]

    def choose(c, i, j, weights):
        if fitter is not None:
            fitter.between_steps()
        weights = weights.cpu().numpy()
        values = []
        for decoder, (lo, hi) in zip(decoders, bounds):
            try:
                values.append(decoder.decode(family, weights[lo:hi]))
            except AssertionError:  # constriction's word for a payload that these tables cannot have produced
                raise _failure(f"value ({c}, {i}, {j})") from None
        return torch.from_numpy(np.concatenate(values).astype(np.int64))

    return choose
