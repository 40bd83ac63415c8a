"""``pixelrnn compress`` and ``pixelrnn decompress``: lossless compression of images with a model.

The coding is :mod:`pixelrnn.codec`'s: an arithmetic coder driven by the model's conditional distributions, so an
image takes about its negative log-likelihood in bits, as "Pixel Recurrent Neural Networks" (van den Oord et al.,
ICML 2016) notes of exact likelihood models. ``pixelrnn quantize`` makes a checkpoint's integer model
(:mod:`pixelrnn.exact`) and stores it beside the weights; ``compress`` does so when it is missing.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from .. import codec, devices, exact, pretrained
from ..checkpoint import read_training_config, resolve as checkpoint_folder
from ..distributions import nats_to_bits_per_dim
from ..errors import ConfigError, OutputError, PixelRNNError, no_empty_folders_on_failure, write_atomic, writing
from ..evaluate import evaluate
from ..fitting import load_with_data
from ..images import has_alpha, read_images, save_image
from .common import Shared, count, natural, output_flags, writable

# The largest file decompress reads into memory: far beyond a real one (hundreds of thousands of 64x64 RGB images).
MAX_FILE_BYTES = 2**32
CLASSES_FILE = "classes.csv"  # what decompress writes beside the images of a class-conditional model's file


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
    p.add_argument("--class", dest="label", type=natural, metavar="N",
                   help="the class of every image, for a class-conditional model (a data set's split brings its "
                        "own labels); stored in the file")
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
    """The model, the images to compress (files, or a data-set split), their names (None for a split) and their
    classes (None for an unconditional model)."""
    if args.images:
        if args.data:
            raise ConfigError("give image files or --data NAME, not both")
        model = pretrained.load(args.run, verify=not args.no_verify)
        images = read_images(args.images, model.image_shape, model.levels)
        return model, images, None if args.no_names else _stems(args.images), args.label, [has_alpha(p) for p in args.images]
    if not args.data and read_training_config(pretrained.resolve(args.run)).get("data") is None:
        shape = pretrained.load(args.run, verify=not args.no_verify).image_shape
        raise ConfigError(f"this checkpoint does not say what data it was trained on; give image files to "
                          f"compress, or --data NAME with images of the model's size {shape} (C, H, W)")
    model, data = load_with_data(args.run, args.data, args.split, args.data_dir, verify=not args.no_verify)
    labels = args.label
    if labels is None and model.settings.num_classes and data.labels is not None:
        labels = data.labels[:args.limit]
    return model, data.images[:args.limit].long(), None, labels, None


def integer_model(args, model, write: bool):
    """The integer model and device of the exact path for ``model`` (stored beside its checkpoint; made and, with
    ``write``, stored there when missing, but never into the package's shipped models); (None, the CPU) for a
    family that codes with the float path, which runs on the CPU alone."""
    if not exact.supports(model):
        return None, devices.cpu_only(args.device, args.command)
    device = devices.resolve_device(args.device)
    shipped = isinstance(pretrained.locate(args.run), pretrained.Pretrained)
    folder = checkpoint_folder(pretrained.resolve(args.run))
    integer = exact.stored_integer(model, folder)
    if integer is None:
        integer = exact.quantize(model)
        if write and not shipped:
            try:
                exact.save_integer(exact.exact_path(folder), integer)
            except OutputError as e:  # a read-only run folder: the same integers are made again next time
                sys.stderr.write(f"pixelrnn {args.command}: note: the integer model is not stored ({e})\n")
    return integer, device


def cmd_compress(args) -> int:
    devices.resolve_device(args.device)  # a bad --device is refused before anything is read
    out = writable(args.output, args.force)
    model, images, names, labels, alpha = _load_images(args)
    codec.check_inputs(model, images, names, labels)  # e.g. a class-conditional model without labels: nothing written
    integer, device = integer_model(args, model, write=True)
    if alpha is not None and any(alpha) and integer is None:
        alpha = None  # the float path (a family without an integer form) cannot record it: dropped as before
    data = codec.encode(model, images, names=names, progress=not args.quiet, labels=labels, integer=integer,
                        device=device, alpha=alpha)
    write_atomic(out, data)  # never a half-written file under the final name, nor a stray .tmp
    dims = images[0].numel()
    y = None if labels is None else torch.as_tensor(labels).reshape(-1).expand(len(images))
    nll = evaluate(model, images, y, batch_size=64)["nats_per_image"]
    given = " given the classes, which the file holds too" if labels is not None else ""
    print(f"compressed {len(images)} images to {len(data)} bytes: "
          f"{8 * len(data) / (len(images) * dims):.4f} bits/dim (model NLL {nats_to_bits_per_dim(nll, dims):.4f}"
          f"{given}, raw {math.log2(model.levels):.4f}) -> {out}")
    return 0


def add_decompress(sub, shared: Shared) -> None:
    p = sub.add_parser("decompress", help="restore the images of a compressed file as PNGs",
                       parents=[shared.run, shared.running, shared.quiet])
    p.add_argument("file", nargs="?",
                   help="the compressed file (alone, without a run before it, for a file of a shipped model)")
    output_flags(p, None, "folder for the PNG files (NAME.png for the names the file stores, else image-00000.png, "
                          "...)")
    p.set_defaults(func=cmd_decompress)


def _read_compressed(path: str) -> bytes:
    """The bytes of a file given to decompress, refused in one line where they cannot be one."""
    try:
        source = Path(path)
        if source.exists() and not source.is_file():  # a device such as /dev/zero would be read until memory ends
            raise PixelRNNError(f"{path} is not a regular file; give a file written by `pixelrnn compress`")
        if source.is_file() and source.stat().st_size > MAX_FILE_BYTES:
            raise PixelRNNError(f"{path} is {source.stat().st_size / 2**30:.1f} GiB, more than decompress reads "
                                f"({MAX_FILE_BYTES // 2**30} GiB); split the images over several files")
        return source.read_bytes()
    except OSError as e:
        raise PixelRNNError(f"cannot read {path}: {e.strerror}") from None


def _starts_like_a_compressed_file(path: Path) -> bool:
    if not path.is_file():  # opened, a FIFO would wait for a writer
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(codec.MAGIC)) == codec.MAGIC
    except OSError:
        return False


def _shipped_model_of(header: codec.Header) -> str | None:
    """The shipped model that compressed the file of ``header``, if one did (its fingerprint is in the header)."""
    for name in pretrained.names():
        if codec.model_digest(pretrained.load_pretrained(name)) == header.model:
            return name
    return None


def _model_for(args) -> tuple[torch.nn.Module, bytes, codec.Header]:
    """The model, the file's bytes and its header: the run given, or with the file alone the shipped model that
    compressed it. A file of another model is refused in one line that names the shipped one, if one made it."""
    if args.file is None:  # one argument: the file, or a run whose file was forgotten
        given = Path(args.run)
        if not _starts_like_a_compressed_file(given):
            if given.exists() and not given.is_dir():
                raise ConfigError(f"{args.run} is not a file written by `pixelrnn compress`; decompress takes the "
                                  f"model that compressed a file, then the file: pixelrnn decompress RUN FILE -o "
                                  f"{args.output}")
            raise ConfigError(f"give the compressed file after the model: pixelrnn decompress {args.run} FILE -o "
                              f"{args.output}")
        data = _read_compressed(args.run)
        header = codec.read_header(data)
        name = _shipped_model_of(header)
        if name is None:
            raise ConfigError(f"{args.run} was not compressed by a shipped model; give the run that compressed it "
                              f"first: pixelrnn decompress RUN {args.run} -o {args.output}")
        print(f"{args.run} was compressed by the shipped model {name}")
        args.run, args.file = pretrained.PREFIX + name, args.run  # as if given in full, never a folder's name
        return pretrained.load(args.run), data, header
    model = pretrained.load(args.run, verify=not args.no_verify)
    data = _read_compressed(args.file)
    header = codec.read_header(data)
    if header.model != codec.model_digest(model) and (name := _shipped_model_of(header)) is not None:
        raise ConfigError(f"{args.file} was compressed by the shipped model {name}, not by {args.run}: pixelrnn "
                          f"decompress {name} {args.file} -o {args.output}")
    return model, data, header


def _outputs(out: Path, header: codec.Header, force: bool) -> list[Path]:
    """The PNG files to write, one per image; refused before decoding if any would replace a file without --force."""
    names = header.names or [f"image-{k:05d}" for k in range(header.count)]
    paths = [out / f"{name}.png" for name in names]
    # Without names, any image-*.png (also from a longer file decoded earlier) would mix with the new ones.
    taken = any(out.glob("image-*.png")) if header.names is None else any(p.exists() for p in paths)
    taken = taken or (header.classes is not None and (out / CLASSES_FILE).exists())
    if taken and not force:
        raise ConfigError(f"{out} already holds decompressed images; pass --force to overwrite them, or -o another "
                          "folder")
    return paths


def cmd_decompress(args) -> int:
    devices.resolve_device(args.device)  # a bad --device is refused before anything is read
    out = Path(args.output)
    model, data, header = _model_for(args)
    codec.check_header(model, header)  # another model: refused before its integer form is made
    paths = _outputs(out, header, args.force)  # the header's names are checked safe here
    if header.version == codec.EXACT_VERSION:
        integer, device = integer_model(args, model, write=False)  # decoding never writes into the run
    else:
        integer, device = None, devices.cpu_only(args.device, args.command)  # the float path: as it was encoded
    decoded = codec.decode_file(model, data, progress=not args.quiet, integer=integer, device=device)
    alpha = decoded.alpha or (False,) * len(paths)
    with no_empty_folders_on_failure(out):  # a write that fails leaves no folder made for it
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
        for image, path, opaque in zip(decoded.images, paths, alpha):
            save_image(image, model.levels, path, alpha=opaque)
        classes = ""
        if decoded.labels is not None:
            rows = [f"{path.stem},{int(label)}" for path, label in zip(paths, decoded.labels)]
            write_atomic(out / CLASSES_FILE, ("name,class\n" + "\n".join(rows) + "\n").encode())
            classes = f" and their classes into {out / CLASSES_FILE}"
    print(f"decompressed {len(decoded.images)} images into {out}{classes}")
    return 0


def add_quantize(sub, shared: Shared) -> None:
    p = sub.add_parser("quantize", help="make a checkpoint's exact integer model (compress makes it when needed)",
                       parents=[shared.run])
    p.add_argument("--force", action="store_true", help="compute it again even where one is stored")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> int:
    model = pretrained.load(args.run, verify=not args.no_verify)
    if not exact.supports(model):
        raise ConfigError(f"the {model.config['model']} family has no exact integer form yet; its files are coded "
                          "with the float path (format versions 2 and 3), which needs none")
    folder = checkpoint_folder(pretrained.resolve(args.run))
    path = exact.exact_path(folder)
    if args.force and path.is_file():
        integer = exact.quantize(model)
        exact.save_integer(path, integer)
    else:
        integer = exact.for_checkpoint(model, folder)
    s = integer.settings
    print(f"integer model {exact.fingerprint(integer)[:16]} ({s.weight_bits}-bit weights, {s.act_bits}-bit "
          f"activations, calibrated on {integer.info['calibration']}) -> {path}")
    return 0
