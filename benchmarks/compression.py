"""Lossless compression of Fashion-MNIST test images: the model's codec against PNG, WebP, gzip and xz.

All figures in bits per dimension (bits per 8-bit value), over the same images:

- pixelrnn codec: the whole compressed file (header and checksums included), and its encode and decode images/s;
- the model's NLL: -log2 p(x), the length an ideal coder would reach;
- PNG (Pillow, optimize=True) and WebP lossless (Pillow, method 6), one file per image, as a user would store them;
- gzip (level 9) and xz (preset 9) of the raw bytes of all the images together.

It also gives the codec's fixed overhead per file (magic, version, header, fingerprint, checksums: everything but
the coded payload) for files of 1, 10 and 500 images, which decides whether one image per file beats PNG.

    python benchmarks/compression.py RUN|NAME [--data fashion-mnist] [--limit 500] [--out table.md]
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import time
from pathlib import Path

import torch
from PIL import Image

from pixelrnn import codec, pretrained
from pixelrnn.data import load_dataset
from pixelrnn.distributions import nats_to_bits_per_dim
from pixelrnn.evaluate import evaluate
from pixelrnn.images import to_uint8


def image_bytes(pixels, fmt: str, **options) -> int:
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, fmt, **options)
    return buffer.tell()


def overhead_table(model, images, counts=(1, 10, 500)) -> list[str]:
    """The bytes of each file that are not payload, for the first ``n`` images, for each n in ``counts``."""
    lines = ["| images per file | file bytes | payload bytes | fixed overhead (bytes) |", "|---|---|---|---|"]
    for n in (n for n in counts if n <= len(images)):
        data = codec.encode(model, images[:n])
        payload = codec.read_header(data).payload_bytes
        lines.append(f"| {n} | {len(data)} | {payload} | {len(data) - payload} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained model's run directory or checkpoint, or a shipped model's name")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--out")
    args = parser.parse_args()

    model = pretrained.load(args.run)  # a run folder, or a shipped name (bf16 weights upcast)
    images = load_dataset(args.data, args.split).images[:args.limit].long()
    dims = images.numel()
    pixels = to_uint8(images, model.levels)  # (N, H, W, C) uint8, what the other formats store
    rows = []

    start = time.perf_counter()
    data = codec.encode(model, images, progress=True)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decode(model, data, progress=True)
    decode_s = time.perf_counter() - start
    assert torch.equal(decoded, images), "the codec's round trip is not exact"
    rows.append(("pixelrnn codec (whole file)", 8 * len(data) / dims,
                 f"encode {len(images) / encode_s:.1f} images/s, decode {len(images) / decode_s:.1f} images/s"))
    nll = evaluate(model, images)["nats_per_image"] * len(images)
    rows.append(("model NLL (ideal code length)", nats_to_bits_per_dim(nll, dims), ""))
    rows.append(("PNG (optimize=True)", 8 * sum(image_bytes(p, "PNG", optimize=True) for p in pixels) / dims, ""))
    rows.append(("WebP lossless", 8 * sum(image_bytes(p, "WEBP", lossless=True, method=6) for p in pixels) / dims,
                 ""))
    raw = pixels.tobytes()
    rows.append(("gzip -9 (all raw bytes)", 8 * len(gzip.compress(raw, 9)) / dims, ""))
    rows.append(("xz -9 (all raw bytes)", 8 * len(lzma.compress(raw, preset=9)) / dims, ""))

    lines = [f"{len(images)} {args.data} {args.split} images, model {model.config['model']} from {args.run}", "",
             "| method | bits/dim | speed |", "|---|---|---|"]
    lines += [f"| {name} | {bpd:.3f} | {speed} |" for name, bpd, speed in rows]
    lines += ["", *overhead_table(model, images)]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
