"""``pixelrnn compress`` and ``pixelrnn decompress``: lossless compression of images with a model.

The coding is :mod:`pixelrnn.codec`'s: an arithmetic coder driven by the model's conditional distributions, so an
image takes about its negative log-likelihood in bits, as "Pixel Recurrent Neural Networks" (van den Oord et al.,
ICML 2016) notes of exact likelihood models.
"""

from __future__ import annotations

import math
from pathlib import Path

from .. import codec, devices, pretrained
from ..checkpoint import read_training_config
from ..distributions import nats_to_bits_per_dim
from ..errors import ConfigError, PixelRNNError, write_atomic, writing
from ..evaluate import evaluate
from ..fitting import load_with_data
from ..images import read_images, save_image
from .common import Shared, count, output_flags, writable

# The largest file decompress reads into memory: far beyond a real one (hundreds of thousands of 64x64 RGB images).
MAX_FILE_BYTES = 2**32


def add_compress(sub, shared: Shared) -> None:
    p = sub.add_parser("compress", help="compress images losslessly with a model",
                       parents=[shared.run, shared.running, shared.split, shared.data_dir, shared.quiet])
    p.add_argument("images", nargs="*", help="PNG/JPEG files of the model's size (default: a split of --data)")
    output_flags(p, None, "the compressed file")
    p.add_argument("--limit", type=count, help="only the first N images of the split (without image files)")
    p.add_argument("--data", help="compress a split of this data set instead of files (default: the one the model "
                                  "was trained on)")
    p.add_argument("--no-names", action="store_true",
                   help="leave the files' names out (decompress then writes image-00000.png, ...)")
    p.set_defaults(func=cmd_compress)


def _stems(paths: list[str]) -> list[str]:
    """The files' stems, the names that decompress restores as NAME.png; two files of one stem are refused.

    Stems that differ only in case are refused too: a case-insensitive file system would write both to one file.
    """
    first: dict[str, str] = {}
    for path in paths:
        stem = Path(path).stem
        if problem := codec.name_problem(stem):
            raise ConfigError(f"{path}: its name {stem!r} {problem}, so it cannot be stored; rename the file, or "
                              "pass --no-names")
        seen = first.get(stem.casefold())
        if seen is not None:
            same = (f"the same name {stem!r}" if Path(seen).stem == stem
                    else f"names that differ only in case ({Path(seen).stem!r}, {stem!r})")
            raise ConfigError(f"{seen} and {path} have {same}, and decompress would write both to one file; rename "
                              "one, or pass --no-names")
        first[stem.casefold()] = path
    return [Path(path).stem for path in paths]


def _load_images(args):
    """The model, the images to compress (files, or a data-set split), and their names (None for a split)."""
    if args.images:
        if args.data:
            raise ConfigError("give image files or --data NAME, not both")
        model = pretrained.load(args.run, verify=not args.no_verify)
        images = read_images(args.images, model.image_shape, model.levels)
        return model, images, None if args.no_names else _stems(args.images)
    if not args.data and read_training_config(pretrained.resolve(args.run)).get("data") is None:
        shape = pretrained.load(args.run, verify=not args.no_verify).image_shape
        raise ConfigError(f"this checkpoint does not say what data it was trained on; give image files to "
                          f"compress, or --data NAME with images of the model's size {shape} (C, H, W)")
    model, data = load_with_data(args.run, args.data, args.split, args.data_dir, verify=not args.no_verify)
    return model, data.images[:args.limit].long(), None


def cmd_compress(args) -> int:
    devices.cpu_only(args.device, "compress")
    out = writable(args.output, args.force)
    model, images, names = _load_images(args)
    # Refuses a class-conditional model, and unsafe names, before the long work.
    data = codec.encode(model, images, names=names, progress=not args.quiet)
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
    output_flags(p, None, "folder for the PNG files (NAME.png for the names the file stores, else image-00000.png, "
                          "...)")
    p.set_defaults(func=cmd_decompress)


def _outputs(out: Path, header: codec.Header, force: bool) -> list[Path]:
    """The PNG files to write, one per image; refused before decoding if any would replace a file without --force."""
    names = header.names or [f"image-{k:05d}" for k in range(header.count)]
    paths = [out / f"{name}.png" for name in names]
    # Without names, any image-*.png (also from a longer file decoded earlier) would mix with the new ones.
    taken = any(out.glob("image-*.png")) if header.names is None else any(p.exists() for p in paths)
    if taken and not force:
        raise ConfigError(f"{out} already holds decompressed images; pass --force to overwrite them, or -o another "
                          "folder")
    return paths


def cmd_decompress(args) -> int:
    devices.cpu_only(args.device, "decompress")
    out = Path(args.output)
    model = pretrained.load(args.run, verify=not args.no_verify)
    try:
        source = Path(args.file)
        if source.exists() and not source.is_file():  # a device such as /dev/zero would be read until memory ends
            raise PixelRNNError(f"{args.file} is not a regular file; give a file written by `pixelrnn compress`")
        if source.is_file() and source.stat().st_size > MAX_FILE_BYTES:
            raise PixelRNNError(f"{args.file} is {source.stat().st_size / 2**30:.1f} GiB, more than decompress reads "
                                f"({MAX_FILE_BYTES // 2**30} GiB); split the images over several files")
        data = source.read_bytes()
    except OSError as e:
        raise PixelRNNError(f"cannot read {args.file}: {e.strerror}") from None
    paths = _outputs(out, codec.read_header(data), args.force)  # the header's names are checked safe here
    images = codec.decode(model, data, progress=not args.quiet)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    for image, path in zip(images, paths):
        save_image(image, model.levels, path)
    print(f"decompressed {len(images)} images into {out}")
    return 0
