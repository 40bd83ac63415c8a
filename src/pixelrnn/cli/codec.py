"""``pixelrnn compress`` and ``pixelrnn decompress``: lossless compression of images with a model.

The coding is :mod:`pixelrnn.codec`'s: an arithmetic coder driven by the model's conditional distributions, so an
image takes about its negative log-likelihood in bits, as "Pixel Recurrent Neural Networks" (van den Oord et al.,
ICML 2016) notes of exact likelihood models.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import codec, devices, pretrained
from ..distributions import nats_to_bits_per_dim
from ..errors import ConfigError, PixelRNNError, write_atomic, writing
from ..evaluate import evaluate
from ..fitting import load_with_data
from ..images import read_image, save_image
from .common import Shared, count, output_flags, writable


def add_compress(sub, shared: Shared) -> None:
    p = sub.add_parser("compress", help="compress images losslessly with a model",
                       parents=[shared.run, shared.running, shared.split, shared.data_dir, shared.quiet])
    p.add_argument("images", nargs="*", help="PNG/JPEG files of the model's size")
    output_flags(p, None, "the compressed file")
    p.add_argument("--limit", type=count, help="only the first N images of the split (with --data)")
    p.add_argument("--data", help="compress a split of this data set instead of files")
    p.set_defaults(func=cmd_compress)


def _load_images(args):
    """The model, and the images to compress: files, or a data-set split."""
    if args.data:
        model, data = load_with_data(args.run, args.data, args.split, args.data_dir, verify=not args.no_verify)
        return model, data.images[:args.limit].long()
    model = pretrained.load(args.run, verify=not args.no_verify)
    if not args.images:
        raise ConfigError("give image files to compress, or --data NAME, e.g. --data digits")
    return model, torch.stack([read_image(path, model.image_shape, model.levels) for path in args.images])


def cmd_compress(args) -> int:
    devices.cpu_only(args.device, "compress")
    out = writable(args.output, args.force)
    model, images = _load_images(args)
    data = codec.encode(model, images, progress=not args.quiet)  # refuses a class-conditional model
    write_atomic(out, data)  # never a half-written file under the final name, nor a stray .tmp
    dims = images[0].numel()
    nll = evaluate(model, images, batch_size=64)["nats_per_image"]
    print(f"compressed {len(images)} images to {len(data)} bytes: "
          f"{8 * len(data) / (len(images) * dims):.4f} bits/dim (model NLL {nats_to_bits_per_dim(nll, dims):.4f}, "
          f"raw {math.log2(model.levels):.4f}) -> {out}")
    return 0


def add_decompress(sub, shared: Shared) -> None:
    p = sub.add_parser("decompress", help="restore the images of a compressed file as PNGs",
                       parents=[shared.run, shared.running, shared.quiet])
    p.add_argument("file", help="the compressed file")
    output_flags(p, None, "folder for the PNG files (image-00000.png, ...)")
    p.set_defaults(func=cmd_decompress)


def cmd_decompress(args) -> int:
    devices.cpu_only(args.device, "decompress")
    out = Path(args.output)
    if any(out.glob("image-*.png")) and not args.force:
        raise ConfigError(f"{out} already holds decompressed images; pass --force to overwrite them, or -o another "
                          "folder")
    model = pretrained.load(args.run, verify=not args.no_verify)
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise PixelRNNError(f"cannot read {args.file}: {e.strerror}") from None
    images = codec.decode(model, data, progress=not args.quiet)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        save_image(image, model.levels, out / f"image-{k:05d}.png")
    print(f"decompressed {len(images)} images into {out}")
    return 0
