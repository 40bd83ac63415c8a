"""The ``pixelrnn`` command: thin subcommands over the library.

Each subcommand parses its flags, calls one library function and prints. A problem the user can fix (a missing data
set, a bad flag, a corrupt file, a checkpoint of another model) ends with one line on stderr and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from .data import DATASETS, absolute_name, require_labels
from .errors import ConfigError, PixelRNNError


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line that says where to look."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _option_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _model_options(args) -> dict:
    options = {}
    for name in ("layers", "hidden", "head"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes KEY=VALUE, not {item!r}")
        options[key.replace("-", "_")] = _option_value(value)
    return options


def cmd_train(args) -> int:
    from .config import TrainConfig, preset
    from .train import RUN_CONFIG, train

    run_dir = Path(args.out)
    stored = run_dir / RUN_CONFIG
    if args.resume and stored.exists():
        values = json.loads(stored.read_text())  # the run's own settings; flags given now override them
    else:
        values = preset(args.preset) if args.preset else {}
    flags = {"model": args.model, "data": args.data, "data_dir": args.data_dir, "image_size": args.image_size,
             "steps": args.steps, "epochs": args.epochs, "batch_size": args.batch_size, "precision": args.precision,
             "optimizer": args.optimizer, "lr": args.lr, "seed": args.seed, "eval_every": args.eval_every,
             "checkpoint_every": args.checkpoint_every}
    given = {k: v for k, v in flags.items() if v is not None}
    if "steps" in given:
        values.pop("epochs", None)
    if "epochs" in given:
        values.pop("steps", None)
    values.update(given)
    if "data" in values:  # a folder:PATH is stored absolute, so the run works from any directory
        values["data"] = absolute_name(values["data"])
    options = _model_options(args)
    if getattr(args, "class_conditional", False):
        options["num_classes"] = require_labels(values.get("data", "digits"))
    if options:
        values["model_options"] = {**values.get("model_options", {}), **options}
    config = TrainConfig.from_dict(values)
    time_limit = args.time_limit * 60 if args.time_limit else None
    result = train(config, run_dir, resume=args.resume, progress=not args.quiet, time_limit=time_limit)
    print(f"trained {config.model} on {args.data or config.data}: step {result['step']}/{result['total_steps']}, "
          f"train bits/dim {result['train_bits_per_dim']:.4f}, {result['images_per_s']:.1f} images/s")
    if result["valid"]:
        print(f"validation bits/dim {result['valid']['bits_per_dim']:.4f} over {result['valid']['images']} images")
    print(f"run saved in {run_dir}")
    return 0


def _run_data(run: str) -> dict:
    """The training config stored beside a checkpoint, if any (to default the data set)."""
    from .checkpoint import CONFIG, resolve

    where = resolve(run)
    config_file = where / CONFIG if where.is_dir() else None
    if config_file and config_file.exists():
        return json.loads(config_file.read_text()).get("train", {})
    return {}


def _model_and_data(args):
    """The checkpoint's model, and the data split to use with it (by default the data it was trained on)."""
    from .checkpoint import load_checkpoint
    from .data import load_dataset

    model = load_checkpoint(args.run)
    trained = _run_data(args.run)
    name = args.data or trained.get("data")
    if name is None:
        raise ConfigError("this checkpoint does not say what data it was trained on; pass --data")
    data = load_dataset(name, args.split, args.data_dir or trained.get("data_dir"), image_size=trained.get("image_size"))
    if tuple(data.image_shape) != model.image_shape or data.levels != model.levels:
        raise PixelRNNError(f"{name} has images {data.image_shape} with {data.levels} levels, but the model was "
                            f"trained on {model.image_shape} with {model.levels} levels; pick the matching --data")
    return model, data


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate

    model, data = _model_and_data(args)
    name = data.name
    images = data.images if args.limit is None else data.images[:args.limit]
    labels = None if data.labels is None else data.labels[:len(images)]
    result = evaluate(model, images, labels, batch_size=args.batch_size, precision=args.precision,
                      progress=not args.quiet)
    result.update(data=name, split=args.split, model=model.config)
    width = max(14, len(args.data or name) + 2)  # a long folder:PATH must not run into the next column
    print(f"{'data':<{width}}{'split':<8}{'images':>8}{'bits/dim':>11}{'nats/image':>13}")
    print(f"{args.data or name:<{width}}{args.split:<8}{result['images']:>8}{result['bits_per_dim']:>11.4f}{result['nats_per_image']:>13.2f}")
    out = Path(args.json) if args.json else Path(args.run) / f"eval-{name.replace(':', '_').replace('/', '_')}-{args.split}.json"
    if Path(args.run).is_dir() or args.json:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def cmd_sample(args) -> int:
    from .checkpoint import load_checkpoint
    from .images import save_grid

    model = load_checkpoint(args.run)
    generator = torch.Generator().manual_seed(args.seed)
    classes = model.cfg.num_classes
    if args.class_label is not None and not classes:
        raise ConfigError("this model is not class-conditional; train it with --class-conditional to use --class")
    if args.class_label is not None and not 0 <= args.class_label < classes:
        raise ConfigError(f"--class must be in 0..{classes - 1}")
    if args.per_class:
        if not classes:
            raise ConfigError("--per-class needs a class-conditional model")
        y = torch.arange(classes).repeat_interleave(args.n)  # one row of n images per class
        x = model.sample(len(y), temperature=args.temperature, generator=generator, method=args.method,
                         progress=not args.quiet, y=y)
        path = save_grid(x, model.levels, args.output, columns=args.n)
        print(f"wrote {args.n} samples of each of {classes} classes (one row per class) to {path}")
        return 0
    x = model.sample(args.n, temperature=args.temperature, generator=generator, method=args.method,
                     progress=not args.quiet, y=args.class_label)
    path = save_grid(x, model.levels, args.output)
    print(f"wrote {args.n} samples to {path}")
    return 0


def cmd_complete(args) -> int:
    from .generate import occlusion
    from .images import completion_panel

    model, data = _model_and_data(args)
    originals = data.images[args.first:args.first + args.n].long()
    known = occlusion(args.occlude, model.image_shape)
    # Every original is completed k times in one batch: rows of the batch are (image, completion).
    batch = originals.repeat_interleave(args.samples, dim=0)
    generator = torch.Generator().manual_seed(args.seed)
    y = None
    if model.cfg.num_classes and data.labels is not None:  # complete each image as its own class
        y = data.labels[args.first:args.first + args.n].repeat_interleave(args.samples)
    completions = model.complete(batch, known, temperature=args.temperature, generator=generator,
                                 progress=not args.quiet, y=y)
    path = completion_panel(originals, known, completions.view(len(originals), args.samples, *model.image_shape),
                            model.levels, args.output)
    print(f"wrote {len(originals)} x {args.samples} completions to {path}")
    return 0


def _load_images(args):
    """The model, and the images to compress: files, or a data-set split."""
    if args.data:
        model, data = _model_and_data(args)
        return model, data.images[:args.limit].long()
    from .checkpoint import load_checkpoint
    from .images import read_image

    model = load_checkpoint(args.run)
    if not args.images:
        raise ConfigError("give image files to compress, or --data NAME")
    return model, torch.stack([read_image(path, model.image_shape, model.levels) for path in args.images])


def cmd_compress(args) -> int:
    import math

    from . import codec
    from .distributions import nats_to_bits_per_dim
    from .evaluate import evaluate

    model, images = _load_images(args)
    data = codec.encode(model, images, progress=not args.quiet)
    out = Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)  # never leave a half-written file under the final name
    dims = images[0].numel()
    nll = evaluate(model, images, batch_size=64)["nats_per_image"]
    print(f"compressed {len(images)} images to {len(data)} bytes: "
          f"{8 * len(data) / (len(images) * dims):.4f} bits/dim (model NLL {nats_to_bits_per_dim(nll, dims):.4f}, "
          f"raw {math.log2(model.levels):.4f}) -> {out}")
    return 0


def cmd_decompress(args) -> int:
    from . import codec
    from .checkpoint import load_checkpoint
    from .images import save_image

    model = load_checkpoint(args.run)
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise PixelRNNError(f"cannot read {args.file}: {e.strerror}") from None
    images = codec.decode(model, data, progress=not args.quiet)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        save_image(image, model.levels, out / f"image-{k:05d}.png")
    print(f"decompressed {len(images)} images into {out}")
    return 0


def cmd_bench(args) -> int:
    from .benchmark import train_speed
    from .data import load_dataset
    from .models import build_model

    data = load_dataset(args.data, "train", args.data_dir)
    options = _model_options(args)
    gen = torch.Generator().manual_seed(0)
    print(f"{'model':<18}{'batch':>6}{'precision':>10}{'images/s':>10}")
    for precision in args.precision:
        torch.manual_seed(0)
        model = build_model(args.model, data.image_shape, data.levels, **options)
        batches = [data.images[torch.randint(len(data), (args.batch_size,), generator=gen)].long() for _ in range(4)]
        result = train_speed(model, batches, precision, warmup=args.warmup, steps=args.steps)
        print(f"{args.model:<18}{args.batch_size:>6}{precision:>10}{result['images_per_s']:>10.1f}")
    return 0


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", type=int, help="layers (residual blocks / LSTM layers)")
    p.add_argument("--hidden", type=int, help="h, the hidden width")
    p.add_argument("--head", type=int, help="width of the output head")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other model option, e.g. --set residual=false (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from .config import PRECISIONS, PRESETS
    from .data import SPLITS
    from .models import model_names

    parser = Parser(prog="pixelrnn", description="PixelRNN models: train, evaluate, sample, complete.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("--model", choices=model_names())
    p.add_argument("--data", help=f"{', '.join(DATASETS)} or folder:PATH")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--preset", help=f"named configuration: {', '.join(PRESETS)}")
    _add_model_flags(p)
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int)
    steps.add_argument("--epochs", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--optimizer", choices=("rmsprop", "adam"))
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--time-limit", type=float, metavar="MINUTES", help="stop (with a checkpoint) after this long")
    p.add_argument("--image-size", type=int, help="resize folder:PATH images to this size")
    p.add_argument("--data-dir", help="where data sets live (default $PIXELRNN_DATA_DIR or ~/.cache/pixelrnn/data)")
    p.add_argument("--class-conditional", action="store_true",
                   help="condition on the data set's class labels (a learned bias per class in every layer)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="exact bits/dim and nats/image over a data split")
    p.add_argument("run", help="run directory or checkpoint")
    p.add_argument("--data", help="data set (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--data-dir")
    p.add_argument("--json", help="where to write the result (default RUN/eval-DATA-SPLIT.json)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="draw samples into a PNG grid")
    p.add_argument("run", help="run directory or checkpoint")
    p.add_argument("-n", type=int, default=64, help="number of images")
    p.add_argument("-o", "--output", default="samples.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--class", dest="class_label", type=int, help="the class to draw (class-conditional models)")
    p.add_argument("--per-class", action="store_true", help="a grid with one row of -n samples per class")
    p.add_argument("--method", default="fast", choices=("fast", "naive"),
                   help="fast: each layer at the new pixel only; naive: a full forward pass per value")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "complete", help="occlude real images and sample the rest several times",
        description="Occlude part of real images and complete them with the model, as in the paper's figure 1. "
                    "The model generates in raster order, so it conditions only on what comes before each value: "
                    "with an occlusion that is not a suffix in raster order (right-half, a box, a mask), the known "
                    "pixels after the first hidden one are kept but cannot influence the values drawn before them.")
    p.add_argument("run", help="run directory or checkpoint")
    p.add_argument("--occlude", default="bottom-half",
                   help="bottom-half, right-half, box:x0,y0,x1,y1, or a PNG mask (white = hidden)")
    p.add_argument("--data", help="data set of the images (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--data-dir")
    p.add_argument("-n", type=int, default=8, help="number of images")
    p.add_argument("--first", type=int, default=0, help="index of the first image in the split")
    p.add_argument("-k", "--samples", type=int, default=4, help="completions per image")
    p.add_argument("-o", "--output", default="completions.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("compress", help="compress images losslessly with a model")
    p.add_argument("run", help="run directory or checkpoint")
    p.add_argument("images", nargs="*", help="PNG/JPEG files of the model's size")
    p.add_argument("-o", "--output", required=True, help="the compressed file")
    p.add_argument("--data", help="compress a data-set split instead of files")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--limit", type=int, help="only the first N images of the split")
    p.add_argument("--data-dir")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="restore the images of a compressed file as PNGs")
    p.add_argument("run", help="the run directory or checkpoint that compressed the file")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="directory for the PNG files")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("bench", help="training images/s of a model configuration")
    p.add_argument("--model", choices=model_names(), default="pixelcnn")
    _add_model_flags(p)
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .allocator import tune

    tune()  # fewer page faults in training and sampling; see allocator.py
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PixelRNNError as e:
        sys.stderr.write(f"pixelrnn {args.command}: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"pixelrnn {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
