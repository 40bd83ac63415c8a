"""Lossless compression of Fashion-MNIST test images: the model's codec against PNG, WebP, gzip and xz, and the
codec's speed.

All figures in bits per dimension (bits per 8-bit value), over the same images:

- pixelrnn codec: the whole compressed file (header and checksums included), and its encode and decode images/s;
- the model's NLL: -log2 p(x), the length an ideal coder would reach;
- PNG (Pillow, optimize=True) and WebP lossless (Pillow, method 6), one file per image, as a user would store them;
- gzip (level 9) and xz (preset 9) of the raw bytes of all the images together.

It also gives the codec's fixed overhead per file (magic, version, header, fingerprints, checksums: everything but
the coded payload) for files of 1, 10 and 500 images, which decides whether one image per file beats PNG.

The speed table (``--speed``): encode and decode images/s of files of 1, 16 and 256 images (one call each: the
encoder's full pass runs on the whole file, the decoder walks it in one batch), on one thread and on all, beside
``evaluate``'s images/s (fp32, batch 16) on the same threads, which the encoder is measured against. For families
with an integer form that is the exact path (format 4); for the others, the float path (formats 2 and 3).

    python benchmarks/compression.py RUN|NAME [--data fashion-mnist] [--limit 500] [--out table.md]
    python benchmarks/compression.py RUN|NAME --speed [--batches 1,16,256] [--threads 1,all]
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import os
import time
from pathlib import Path

import torch
from PIL import Image

from pixelrnn import codec, exact, pretrained
from pixelrnn.checkpoint import resolve as checkpoint_folder
from pixelrnn.data import load_dataset
from pixelrnn.devices import cpu_name, num_threads
from pixelrnn.distributions import nats_to_bits_per_dim
from pixelrnn.evaluate import evaluate
from pixelrnn.images import to_uint8


def image_bytes(pixels, fmt: str, **options) -> int:
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, fmt, **options)
    return buffer.tell()


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
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained model's run directory or checkpoint, or a shipped model's name")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--out")
    parser.add_argument("--speed", action="store_true", help="the speed table instead of the size table")
    parser.add_argument("--batches", default="1,16,256", help="images per file for --speed")
    parser.add_argument("--threads", default="1,all", help="thread counts for --speed ('all': every core)")
    args = parser.parse_args()

    model = pretrained.load(args.run)  # a run folder, or a shipped name (bf16 weights upcast)
    integer = integer_of(model, args.run)
    data_split = load_dataset(args.data, args.split)
    labels = data_split.labels if model.settings.num_classes else None
    if args.speed:
        batches = [int(b) for b in args.batches.split(",")]
        threads = [os.cpu_count() if t == "all" else int(t) for t in args.threads.split(",")]
        lines = [f"{args.data} {args.split} images, model {model.config['model']} from {args.run}, "
                 f"{cpu_name()}", "", *speed_table(model, integer, data_split.images.long(), labels, batches,
                                                    threads)]
        print("\n".join(lines))
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    images = data_split.images[:args.limit].long()
    labels = None if labels is None else labels[:args.limit]
    dims = images.numel()
    pixels = to_uint8(images, model.levels)  # (N, H, W, C) uint8, what the other formats store
    rows = []

    start = time.perf_counter()
    data = codec.encode(model, images, labels=labels, integer=integer, progress=True)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decode(model, data, integer=integer, progress=True)
    decode_s = time.perf_counter() - start
    assert torch.equal(decoded, images), "the codec's round trip is not exact"
    rows.append(("pixelrnn codec (whole file)", 8 * len(data) / dims,
                 f"encode {len(images) / encode_s:.1f} images/s, decode {len(images) / decode_s:.1f} images/s"))
    nll = evaluate(model, images, labels)["nats_per_image"] * len(images)
    rows.append(("model NLL (ideal code length)" + (", given the classes" if labels is not None else ""),
                 nats_to_bits_per_dim(nll, dims), ""))
    rows.append(("PNG (optimize=True)", 8 * sum(image_bytes(p, "PNG", optimize=True) for p in pixels) / dims, ""))
    rows.append(("WebP lossless", 8 * sum(image_bytes(p, "WEBP", lossless=True, method=6) for p in pixels) / dims,
                 ""))
    raw = pixels.tobytes()
    rows.append(("gzip -9 (all raw bytes)", 8 * len(gzip.compress(raw, 9)) / dims, ""))
    rows.append(("xz -9 (all raw bytes)", 8 * len(lzma.compress(raw, preset=9)) / dims, ""))

    lines = [f"{len(images)} {args.data} {args.split} images, model {model.config['model']} from {args.run}", "",
             "| method | bits/dim | speed |", "|---|---|---|"]
    lines += [f"| {name} | {bpd:.3f} | {speed} |" for name, bpd, speed in rows]
    lines += ["", *overhead_table(model, images, labels, integer)]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
