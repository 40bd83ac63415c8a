"""Lossless compression of a data set's images: the model's codec against PNG, WebP, JPEG-XL, gzip and xz, and the
codec's speed.

The size table compares, on the same images, whole files (headers, checksums and all):

- the pixelrnn codec (``codec.encode``/``codec.decode``; the exact path, format 4, for a family with an integer
  form), which codes each value in about -log2 p(value | earlier values) bits under the model (PixelRNN, van den
  Oord et al. 2016, section 2.1, equation 1: the image's likelihood as a product of conditionals);
- PNG (Pillow, optimize=True), WebP lossless (Pillow, method 6), and JPEG-XL lossless at effort 7 and 9 (libjxl
  through ``imagecodecs``, the optional extra ``bench``; without it those rows say so and the rest still run);
- gzip (level 9) and xz (preset 9) of the raw bytes (no shape stored, as in a raw file);

each in two layouts: **one image per file** (the sum of the N files' sizes) and **all images in one file** (the
codec: one file of all N; PNG, WebP and JPEG-XL: the images tiled into one near-square grid, within WebP's 16383
pixels a side; gzip and xz: all raw bytes in one stream). Every file is decoded and checked equal to the pixels
it was made from, so the table proves that every row is lossless; encode and decode wall times (``perf_counter``)
cover all images, except the codec's one-image-per-file decode, which decodes and checks the first
``--per-file-limit`` files only (100 by default, 0 for all: it takes one network pass per value of each file
alone) and says so in its row.
The model's NLL, -log2 p(x), is the ideal code length the codec aims at.

All formats store the same information: the model's K levels per value, as the 8-bit values
:func:`pixelrnn.images.to_uint8` writes (v -> round(v * 255 / (K - 1)), one to one, checked), so bits/dim is 8 x
bytes over the same C*H*W*N values in every row. The header names the CPU, the thread count, the images and the
model.

It also gives the codec's fixed overhead per file (magic, version, header, fingerprints, checksums: everything but
the coded payload) for files of 1, 10 and 500 images, which decides whether one image per file beats PNG.

The speed table (``--speed``): encode and decode images/s of files of 1, 16 and 256 images (one call each: the
encoder's full pass runs on the whole file, the decoder walks it in one batch), on one thread and on all, beside
``evaluate``'s images/s (fp32, batch 16) on the same threads, which the encoder is measured against. For families
with an integer form that is the exact path (format 4); for the others, the float path (formats 2 and 3).

    python benchmarks/compression.py RUN|NAME [--data fashion-mnist] [--limit 500] [--per-file-limit 100]
        [--out table.md]
    python benchmarks/compression.py RUN|NAME --speed [--batches 1,16,256] [--threads 1,all]
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import lzma
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from pixelrnn import codec, exact, pretrained
from pixelrnn.allocator import tune
from pixelrnn.checkpoint import resolve as checkpoint_folder
from pixelrnn.data import load_dataset
from pixelrnn.devices import cpu_name, num_threads
from pixelrnn.distributions import nats_to_bits_per_dim
from pixelrnn.errors import ConfigError, PixelRNNError, write_atomic
from pixelrnn.evaluate import evaluate
from pixelrnn.images import to_uint8

WEBP_MAX_SIDE = 16383  # WebP's limit on a side; the one-file grid keeps within it for every image format
NOT_INSTALLED = "not installed (pip install 'pixelrnn[bench]')"
PER_FILE = "one image per file"
ONE_FILE = "all images in one file"


@dataclass(frozen=True)
class Format:
    """A classical lossless format: ``encode`` turns uint8 pixels (H, W, C) into a whole file's bytes, ``decode``
    gives them back, as an array of the shape it is told (a raw stream does not store its shape)."""

    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, tuple], np.ndarray]
    tiles: bool  # an image format (all images tiled into one picture) rather than a byte stream


@dataclass(frozen=True)
class Row:
    """One line of the size table. ``size`` is None for a format that could not run (``note`` says why)."""

    layout: str
    method: str
    size: float | None  # bytes: of whole files, or (the model's NLL) the ideal code length, not a whole number
    values: int  # colour values the size codes (bits/dim = 8 * size / values)
    encode_s: float | None = None
    encoded: int = 0  # images the encode time covers
    decode_s: float | None = None
    decoded: int = 0  # images the decode time covers (and that were checked)
    note: str = ""

    @property
    def bits_per_dim(self) -> float | None:
        return None if self.size is None else 8 * self.size / self.values


def pillow_format(name: str, fmt: str, **options) -> Format:
    def encode(pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, fmt, **options)
        return buffer.getvalue()

    def decode(data: bytes, shape: tuple) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as picture:
            return stored_channels(np.asarray(picture), shape[-1])

    return Format(name, encode, decode, tiles=True)


def stored_channels(decoded: np.ndarray, channels: int) -> np.ndarray:
    """A decoded picture as (H, W, C); WebP has no grey mode, so Pillow stores grey as RGB with three equal
    channels: those give back one channel (unequal ones are returned as they are, and fail the check)."""
    decoded = decoded.reshape(*decoded.shape[:2], -1)
    if channels == 1 and decoded.shape[-1] == 3 and (decoded == decoded[..., :1]).all():
        return decoded[..., :1]
    return decoded


def stream_format(name: str, compress, decompress) -> Format:
    return Format(name, lambda pixels: compress(pixels.tobytes()),
                  lambda data, shape: np.frombuffer(decompress(data), np.uint8).reshape(shape), tiles=False)


def jpegxl_formats(threads: int) -> list[Format | tuple[str, str]]:
    """JPEG-XL lossless at effort 7 (libjxl's default) and 9, or the reason they cannot run, as a name and a note."""
    names = [f"JPEG-XL lossless (effort {effort})" for effort in (7, 9)]
    try:
        imagecodecs = importlib.import_module("imagecodecs")
    except ImportError:
        return [(name, NOT_INSTALLED) for name in names]
    if not getattr(getattr(imagecodecs, "JPEGXL", None), "available", False):
        return [(name, "this imagecodecs build has no JPEG-XL codec") for name in names]

    def jpegxl(name: str, effort: int) -> Format:
        def encode(pixels: np.ndarray) -> bytes:
            grey_or_rgb = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            return imagecodecs.jpegxl_encode(grey_or_rgb, lossless=True, effort=effort, numthreads=threads)

        def decode(data: bytes, shape: tuple) -> np.ndarray:
            return stored_channels(imagecodecs.jpegxl_decode(data, numthreads=threads), shape[-1])

        return Format(name, encode, decode, tiles=True)

    return [jpegxl(name, effort) for name, effort in zip(names, (7, 9))]


def classical_formats(threads: int) -> list[Format | tuple[str, str]]:
    """Every classical format of the table, in its order; a format that cannot run is (name, why)."""
    return [pillow_format("PNG (optimize=True)", "PNG", optimize=True),
            pillow_format("WebP lossless (method 6)", "WEBP", lossless=True, method=6),
            *jpegxl_formats(threads),
            stream_format("gzip -9 (raw bytes)", lambda raw: gzip.compress(raw, 9), gzip.decompress),
            stream_format("xz -9 (raw bytes)", lambda raw: lzma.compress(raw, preset=9), lzma.decompress)]


def grid_of(count: int, height: int, width: int, max_side: int = WEBP_MAX_SIDE) -> tuple[int, int]:
    """(rows, columns) of the near-square grid that tiles ``count`` images, refused beyond ``max_side`` a side."""
    columns = math.ceil(math.sqrt(count * height / width))
    rows = math.ceil(count / columns)
    if rows * height > max_side or columns * width > max_side:
        raise ConfigError(f"{count} images of {height}x{width} do not tile into one picture of at most {max_side} "
                          f"pixels a side (WebP's limit); give a smaller --limit")
    return rows, columns


def tile(pixels: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """(N, H, W, C) -> one (rows*H, columns*W, C) picture, row by row; cells past the N-th are black."""
    n, h, w, c = pixels.shape
    cells = np.zeros((rows * columns, h, w, c), np.uint8)
    cells[:n] = pixels
    return cells.reshape(rows, columns, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)


def untile(picture: np.ndarray, count: int, height: int, width: int) -> np.ndarray:
    """The inverse of :func:`tile`: the first ``count`` cells, (N, H, W, C)."""
    rows, columns = picture.shape[0] // height, picture.shape[1] // width
    cells = picture.reshape(rows, height, columns, width, -1).transpose(0, 2, 1, 3, 4)
    return cells.reshape(rows * columns, height, width, -1)[:count]


def overhead_table(model, images, labels=None, integer=None, counts=(1, 10, 500)) -> list[str]:
    """The bytes of each file that are not payload, for the first ``n`` images, for each n in ``counts``."""
    lines = ["| images per file | file bytes | payload bytes | fixed overhead (bytes) |", "|---|---|---|---|"]
    for n in (n for n in counts if n <= len(images)):
        data = codec.encode(model, images[:n], labels=None if labels is None else labels[:n], integer=integer)
        payload = codec.read_header(data).payload_bytes
        lines.append(f"| {n} | {len(data)} | {payload} | {len(data) - payload} |")
    return lines


def integer_of(model, run):
    """The model's integer form, as ``pixelrnn compress`` uses it (None for a family without one)."""
    if not exact.supports(model):
        return None
    return exact.for_checkpoint(model, checkpoint_folder(pretrained.resolve(run)), write=False)


def timed(work) -> float:
    return timed_call(work)[1]


def speed_table(model, integer, images, labels, batches, threads) -> list[str]:
    """Encode and decode images/s of files of each size in ``batches``, on each thread count, beside evaluate's."""
    path = "exact path (format 4)" if integer is not None else "float path (format 2)"
    lines = [f"codec: {path}", "", "| threads | images per file | encode images/s | decode images/s | "
             "evaluate images/s (fp32, batch 16) | encode / evaluate |", "|---|---|---|---|---|---|"]
    for count in threads:
        with num_threads(count):
            scored = images[:max(batches)]
            evaluate(model, scored, labels if labels is None else labels[:len(scored)], batch_size=16)  # warm-up
            rate = len(scored) / timed(lambda: evaluate(model, scored, None if labels is None else
                                                        labels[:len(scored)], batch_size=16))
            for n in batches:
                x, y = images[:n], None if labels is None else labels[:n]
                data = codec.encode(model, x, labels=y, integer=integer)
                encode_s = timed(lambda: codec.encode(model, x, labels=y, integer=integer))
                decode_s = timed(lambda: codec.decode(model, data, integer=integer))
                lines.append(f"| {count} | {n} | {n / encode_s:.1f} | {n / decode_s:.1f} | {rate:.1f} | "
                             f"{n / encode_s / rate:.2f} |")
            if integer is not None and labels is None:  # the float path of format 2, batch 16, for comparison
                x = images[:16]
                data = codec.encode(model, x, path="float")
                encode_s = timed(lambda: codec.encode(model, x, path="float"))
                decode_s = timed(lambda: codec.decode(model, data))
                lines.append(f"| {count} | 16, float path (format 2) | {16 / encode_s:.1f} | {16 / decode_s:.1f} | "
                             f"{rate:.1f} | {16 / encode_s / rate:.2f} |")
    return lines


def timed_call(work):
    """(work(), its wall time in seconds)."""
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def classical_rows(fmt: Format, pixels: np.ndarray, grid: tuple[int, int]) -> list[Row]:
    """``fmt``'s two rows: each image in a file of its own, then all images in one file; every decode checked."""
    n, h, w, _ = pixels.shape
    fmt.decode(fmt.encode(pixels[0]), pixels[0].shape)  # a first call outside the timings (plugins, tables)
    files, encode_s = timed_call(lambda: [fmt.encode(p) for p in pixels])
    decoded, decode_s = timed_call(lambda: [fmt.decode(f, p.shape) for f, p in zip(files, pixels)])
    assert all(np.array_equal(d, p) for d, p in zip(decoded, pixels)), f"{fmt.name}: a file decodes to other pixels"
    rows = [Row(PER_FILE, fmt.name, sum(len(f) for f in files), pixels.size, encode_s, n, decode_s, n)]

    whole = tile(pixels, *grid) if fmt.tiles else pixels
    data, encode_s = timed_call(lambda: fmt.encode(whole))
    back, decode_s = timed_call(lambda: fmt.decode(data, whole.shape))
    back = untile(back, n, h, w) if fmt.tiles else back
    assert np.array_equal(back, pixels), f"{fmt.name}: the file of all images decodes to other pixels"
    rows.append(Row(ONE_FILE, fmt.name, len(data), pixels.size, encode_s, n, decode_s, n))
    return rows


def codec_rows(model, integer, images, labels, per_file_limit: int | None, progress: bool) -> list[Row]:
    """The codec's two rows: ``codec.encode`` of each image alone, then of all images in one file."""
    n = len(images)
    label = (lambda i: None) if labels is None else (lambda i: labels[i:i + 1])
    codec.decode(model, codec.encode(model, images[:1], labels=label(0), integer=integer), integer=integer)  # warm-up
    files, encode_s = timed_call(lambda: [codec.encode(model, images[i:i + 1], labels=label(i), integer=integer)
                                          for i in range(n)])
    checked = n if per_file_limit is None else min(n, per_file_limit)
    decoded, decode_s = timed_call(lambda: [codec.decode(model, f, integer=integer) for f in files[:checked]])
    assert all(torch.equal(d, images[i:i + 1]) for i, d in enumerate(decoded)), "the codec's round trip is not exact"
    note = "" if checked == n else f"decode timed and checked on the first {checked} of {n} files (--per-file-limit)"
    name = f"pixelrnn codec ({'exact path, format 4' if integer is not None else 'float path'})"
    rows = [Row(PER_FILE, name, sum(len(f) for f in files), images.numel(), encode_s, n, decode_s, checked, note)]

    data, encode_s = timed_call(lambda: codec.encode(model, images, labels=labels, integer=integer,
                                                     progress=progress))
    back, decode_s = timed_call(lambda: codec.decode(model, data, integer=integer, progress=progress))
    assert torch.equal(back, images), "the codec's round trip is not exact"
    return [*rows, Row(ONE_FILE, name, len(data), images.numel(), encode_s, n, decode_s, n)]


def size_table(model, integer, images: torch.Tensor, labels=None, per_file_limit: int | None = None,
               progress: bool = False) -> list[Row]:
    """Every row of the size table, on ``images`` (int [N, C, H, W] in [0, model.levels)).

    Args:
        model: the trained model.
        integer: its integer form (:func:`integer_of`), or None for the float path.
        images: the images; the classical formats get them as :func:`pixelrnn.images.to_uint8` writes them.
        labels: their classes, for a class-conditional model (the codec's files store them).
        per_file_limit: decode (and check) only this many of the codec's one-image-per-file files; None: all.
        progress: progress bars on the codec's long calls.

    Returns:
        The rows, each layout in turn (codec, PNG, WebP, JPEG-XL 7 and 9, gzip, xz), then the model's NLL. A
        format that cannot run has size None and the reason in its note.
    """
    images = images.long()
    pixels = to_uint8(images, model.levels)  # (N, H, W, C) uint8
    back = torch.round(torch.from_numpy(pixels).permute(0, 3, 1, 2).double() * (model.levels - 1) / 255).long()
    assert torch.equal(back, images), "the 8-bit pixels do not map back to the model's values"
    n, h, w, _ = pixels.shape
    grid = grid_of(n, h, w)
    per_file, one_file = [], []
    for fmt in [None, *classical_formats(torch.get_num_threads())]:
        if fmt is None:
            rows = codec_rows(model, integer, images, labels, per_file_limit, progress)
        elif isinstance(fmt, tuple):
            rows = [Row(layout, fmt[0], None, images.numel(), note=fmt[1]) for layout in (PER_FILE, ONE_FILE)]
        else:
            rows = classical_rows(fmt, pixels, grid)
        per_file.append(rows[0])
        one_file.append(rows[1])
    nll = evaluate(model, images, labels)["nats_per_image"] * n
    bits = nats_to_bits_per_dim(nll, images.numel()) * images.numel()
    ideal = Row("ideal code length", "model NLL, -log2 p(x)" + (" given the classes" if labels is not None else ""),
                bits / 8, images.numel(), note="not a file: what an ideal coder would reach with the model")
    return [*per_file, *one_file, ideal]


def describe_images(images: torch.Tensor, levels: int, data: str, split: str) -> str:
    n, c, h, w = images.shape
    kind = "8-bit grey" if c == 1 else "8-bit RGB"
    mapping = "as they are" if levels == 256 else f"v -> round(v * 255 / {levels - 1}), one to one"
    return (f"{n} {data} {split} images of {c}x{h}x{w} (C x H x W), {levels} levels per value: {images.numel():,} "
            f"values; PNG, WebP, JPEG-XL, gzip and xz get them as {kind} (pixelrnn.images.to_uint8: {mapping})")


def seconds_text(seconds: float) -> str:
    """Three significant figures (``0.0343``, ``0.700``, ``56.4``), whole seconds from 100 on."""
    return f"{seconds:.0f}" if seconds >= 99.95 else f"{seconds:#.3g}"  # 99.96 would print as "100."


def format_size_table(rows: list[Row], header: list[str], images: torch.Tensor) -> list[str]:
    """The size table of ``images`` as Markdown lines: ``header``, what the layouts are, then one line per row."""
    count, _, h, w = images.shape
    r, c = grid_of(count, h, w)
    empty = r * c - count
    blank = f", {empty} empty cell{'s' if empty > 1 else ''} black" if empty else ""
    lines = [*header,
             f"One file: PNG, WebP and JPEG-XL tile the images into a grid of {r} rows x {c} columns ({c * w} x "
             f"{r * h} px{blank}, within WebP's {WEBP_MAX_SIDE} px a side); "
             "gzip and xz compress all raw bytes as one stream; the codec writes one file of all images.",
             "bits/dim: 8 x bytes over the same number of values in every row; bytes: whole files, headers included "
             "(summed over the files for one image per file); every file decoded and checked equal to its pixels.",
             "",
             "| layout | method | bytes | bits/dim | encode s | encode images/s | decode s | decode images/s | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.size is None:
            lines.append(f"| {row.layout} | {row.method} | | | | | | | {row.note} |")
            continue
        cells = [row.layout, row.method, f"{row.size:,.0f}", f"{row.bits_per_dim:.3f}"]
        for seconds, count in ((row.encode_s, row.encoded), (row.decode_s, row.decoded)):
            cells += ["", ""] if seconds is None else [seconds_text(seconds), f"{count / seconds:,.1f}"]
        lines.append("| " + " | ".join([*cells, row.note]) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained model's run directory or checkpoint, or a shipped model's name")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--per-file-limit", type=int, default=100,
                        help="decode (and check) only the first N of the codec's one-image-per-file files, since "
                             "each alone takes one network pass per value (0: all)")
    parser.add_argument("--out")
    parser.add_argument("--speed", action="store_true", help="the speed table instead of the size table")
    parser.add_argument("--batches", default="1,16,256", help="images per file for --speed")
    parser.add_argument("--threads", default="1,all", help="thread counts for --speed ('all': every core)")
    args = parser.parse_args(argv)
    tune()  # as the pixelrnn command does: its full passes allocate large maps, which then page-fault less
    try:
        lines = speed_lines(args) if args.speed else size_lines(args)
        print("\n".join(lines))
        if args.out:
            write_atomic(args.out, ("\n".join(lines) + "\n").encode())
    except PixelRNNError as e:
        sys.stderr.write(f"compression.py: error: {e}\n")
        return 2
    return 0


def loaded(args):
    """The model, its integer form, and the split's images and (for a class-conditional model) labels."""
    model = pretrained.load(args.run)  # a run folder, or a shipped name (bf16 weights upcast)
    integer = integer_of(model, args.run)
    data_split = load_dataset(args.data, args.split)
    labels = data_split.labels if model.settings.num_classes else None
    return model, integer, data_split.images.long(), labels


def speed_lines(args) -> list[str]:
    model, integer, images, labels = loaded(args)
    batches = [int(b) for b in args.batches.split(",")]
    threads = [os.cpu_count() if t == "all" else int(t) for t in args.threads.split(",")]
    return [f"{args.data} {args.split} images, model {model.config['model']} from {args.run}, {cpu_name()}", "",
            *speed_table(model, integer, images, labels, batches, threads)]


def size_lines(args) -> list[str]:
    model, integer, images, labels = loaded(args)
    images = images[:args.limit]
    labels = None if labels is None else labels[:args.limit]
    threads = torch.get_num_threads()
    path = "exact path, format 4" if integer is not None else "float path"
    header = [f"CPU: {cpu_name()}, {threads} thread{'s' if threads > 1 else ''} (torch, and libjxl for JPEG-XL; "
              "PNG, WebP, gzip and xz run on one)",
              f"Images: {describe_images(images, model.levels, args.data, args.split)}",
              f"Model: {model.config['model']} from {args.run} (codec: {path})"
              + (", class-conditional: the codec's files store the classes too" if labels is not None else ""), ""]
    rows = size_table(model, integer, images, labels, args.per_file_limit or None, progress=True)
    return [*format_size_table(rows, header, images), "", *overhead_table(model, images, labels, integer)]


if __name__ == "__main__":
    sys.exit(main())
