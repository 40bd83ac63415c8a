"""The ``pixelrnn`` command: thin subcommands over the library.

Each subcommand parses its flags, calls one library function and prints. A problem the user can fix (a missing data
set, a bad flag, a corrupt file, a checkpoint of another model) ends with one line on stderr and exit status 2,
never a traceback. Flags that several commands share come from the parent parsers in ``Shared``; each command's
own flags sit beside its handler.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__, codec, devices, distributed, pretrained
from .allocator import tune
from .benchmark import train_speed
from .checkpoint import RunFolder, training_config
from .config import FLAG_FIELDS, SEED_LIMIT, TrainConfig, check_kernels, merge, model_settings, parse_sets
from .data import DATASETS, SPLITS, absolute_name, dataset_info, load_dataset, require_labels
from .distributions import nats_to_bits_per_dim
from .errors import ConfigError, OutputError, PixelRNNError, write_atomic, writing
from .evaluate import evaluate
from .images import completion_panel, image_format, read_image, save_grid, save_image
from .models import build_model, model_names
from .occlusion import occlusion
from .plot import plot_curves
from .presets import PRESETS, default_preset, preset
from .precision import PRECISIONS, check_precision
from .train import TrainResult, train


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line that says where to look."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show (None, or a switch that is off)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _whole(text: str, low: int, high: int | None, example: str) -> int:
    """``text`` as a whole number in [low, high), or an argparse error that names the range and an example."""
    where = f"of at least {low}" if high is None else f"in [{low}, {'2**63' if high == SEED_LIMIT else high})"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number {where}, e.g. {example}, not {text!r}") from None
    if value < low or (high is not None and value >= high):
        raise argparse.ArgumentTypeError(f"must be a whole number {where}, e.g. {example}, not {value}")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return _whole(text, 1, None, "16")


def natural(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    return _whole(text, 0, None, "0")


def seed(text: str) -> int:
    """An argparse type: a seed in [0, 2**63)."""
    return _whole(text, 0, SEED_LIMIT, "0")


def positive(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, e.g. 1.0, not {text!r}")
    return value


def path(text: str) -> str:
    """An argparse type: a path that is not empty (an empty one would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a file or folder, not an empty string")
    return text


@dataclass(frozen=True)
class Shared:
    """Parent parsers: the flags that several commands share, defined once."""

    quiet: argparse.ArgumentParser
    verify: argparse.ArgumentParser
    data_dir: argparse.ArgumentParser
    run: argparse.ArgumentParser
    running: argparse.ArgumentParser  # every command that runs a model; the home of flags such as --device
    model: argparse.ArgumentParser
    trained_on: argparse.ArgumentParser
    split: argparse.ArgumentParser
    generation: argparse.ArgumentParser

    @classmethod
    def build(cls) -> "Shared":
        parents = {name: argparse.ArgumentParser(add_help=False) for name in cls.__dataclass_fields__}
        parents["verify"].add_argument("--no-verify", action="store_true",
                                       help="load a checkpoint whose weights do not match their recorded sha256")
        parents["run"] = argparse.ArgumentParser(add_help=False, parents=[parents["verify"]])
        parents["quiet"].add_argument("--quiet", action="store_true", help="no progress bar")
        parents["running"].add_argument("--device", default="auto",
                                        help="auto (CUDA when available), cpu, cuda or cuda:N (under torchrun, "
                                             "cuda is each process's own GPU)")
        parents["data_dir"].add_argument("--data-dir", metavar="DIR", help="where data sets live (default: "
                                         "$PIXELRNN_DATA_DIR, else ~/.cache/pixelrnn/data)")
        parents["run"].add_argument("run", type=path, help="a run folder (or a checkpoint folder, its "
                                    "model.safetensors, or RUN/checkpoints/latest), or a shipped model's "
                                    "name (`pixelrnn models`; pretrained:NAME when a folder has that name)")
        model = parents["model"]
        model.add_argument("--layers", type=count, help="layers: residual blocks or LSTM layers (default: the "
                                                        "preset's, else the model's)")
        model.add_argument("--hidden", type=count, help="h, the hidden width (default: the preset's, else the model's)")
        model.add_argument("--head", type=count, help="width of the output head (default: the preset's, else the "
                                                      "model's)")
        model.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="any other model or training option, e.g. --set residual=false (repeatable)")
        parents["trained_on"].add_argument("--data", help="data set (default: the one the model was trained on)")
        parents["split"].add_argument("--split", default="test", choices=SPLITS, help="which split of the data set")
        generation = parents["generation"]
        generation.add_argument("--seed", type=seed, default=0, help="random seed of the draws")
        generation.add_argument("--temperature", type=positive, default=1.0,
                                help="softmax temperature: below 1 sharper, above 1 more varied")
        return cls(**parents)


def _model_options(args) -> dict:
    """--layers, --hidden, --head and --set, as one dict (the --set values still as text)."""
    flags = {name: getattr(args, name) for name in ("layers", "hidden", "head") if getattr(args, name) is not None}
    return {**flags, **parse_sets(args.set)}


def _output_flags(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("-o", "--output", type=path, default=default, required=default is None, help=what)
    p.add_argument("--force", action="store_true", help="overwrite the output if it exists")


def _writable(path: str | Path, force: bool, image: bool = False) -> Path:
    """``path``, unless it exists and --force was not given: an earlier result is never replaced by surprise.

    Checked before the long work that fills it: a directory, or an image name PIL cannot write, fails at once.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name")
    if image:
        image_format(path)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it, or -o another name")
    return path


# train

def add_train(sub, shared: Shared) -> None:
    p = sub.add_parser("train", help="train a model", parents=[shared.running, shared.model, shared.data_dir,
                                                                 shared.quiet, shared.verify],
                       description="Train a model. Without --preset, a data set's CPU-sized preset is used where "
                                   "one exists (`pixelrnn presets` lists them); any flag overrides the preset.")
    p.add_argument("--model", choices=model_names(), help="model family (default: the preset's, else pixelcnn)")
    p.add_argument("--data", help=f"{', '.join(DATASETS)} or folder:PATH (default: the preset's, else digits)")
    p.add_argument("--out", type=path, required=True, help="the run folder")
    p.add_argument("--preset", help="named configuration (default: the CPU-sized one for --data, if any); "
                                    "`pixelrnn presets` lists them")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=count, help="total optimizer steps (default: the preset's, else 1000)")
    steps.add_argument("--epochs", type=positive, help="total epochs over the training split, instead of --steps")
    p.add_argument("--batch-size", type=count, help=f"images per step (default: the preset's, else "
                                                   f"{TrainConfig.batch_size})")
    p.add_argument("--precision", choices=PRECISIONS, help="bf16: matrix work in bfloat16 under autocast (default: "
                                                           f"the preset's, else {TrainConfig.precision})")
    p.add_argument("--optimizer", choices=("rmsprop", "adam"), help=f"default: {TrainConfig.optimizer}")
    p.add_argument("--lr", type=positive, help=f"peak learning rate (default: the preset's, else {TrainConfig.lr})")
    p.add_argument("--seed", type=seed, help=f"seed of the weights and the data order (default: {TrainConfig.seed})")
    p.add_argument("--eval-every", type=natural, help="steps between validation passes; 0: only at the end (default: "
                                                  f"the preset's, else {TrainConfig.eval_every})")
    p.add_argument("--checkpoint-every", type=count, help="steps between checkpoints (default: the preset's, else "
                                                          f"{TrainConfig.checkpoint_every})")
    p.add_argument("--time-limit", type=positive, metavar="MINUTES", help="stop (with a checkpoint) after this long")
    p.add_argument("--image-size", type=count, help="resize folder:PATH images to this size")
    p.add_argument("--class-conditional", action="store_true",
                   help="condition on the data set's class labels (a learned bias per class in every layer)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint, "
                                                         "with its own settings; flags given override them")
    p.add_argument("--grad-accum", type=count, metavar="K", help="split each global batch (--batch-size) into K "
                                                                 "micro-steps, to fit in memory (default: 1)")
    p.add_argument("--compile", action="store_true", default=None, help="run the model through torch.compile")
    p.add_argument("--show", action="store_true", help="print the full configuration and exit without training")
    p.set_defaults(func=cmd_train)


def _base_config(args, run: RunFolder) -> dict:
    """What the flags override: the run's own settings when resuming, else the preset."""
    if args.resume and run.config.is_file():
        return run.read_config()
    name = args.preset
    if name is None:
        data, model = args.data or TrainConfig.data, args.model or TrainConfig.model
        name = default_preset(data, model)
        if name and not args.show and distributed.is_main():
            print(f"using preset {name}, the CPU-sized configuration of {model} for {data} "
                  f"(`pixelrnn presets {name}` shows it; --preset or flags change it)")
    return preset(name) if name else {}


def cmd_train(args) -> int:
    run = RunFolder(args.out)
    flags = {name: getattr(args, name) for name in FLAG_FIELDS}
    config = merge(_base_config(args, run), flags, _model_options(args), class_conditional=args.class_conditional)
    if args.show:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    time_limit = args.time_limit * 60 if args.time_limit else None
    with distributed.session(args.device) as device:  # under torchrun: join the job, leave it at the end
        result = train(config, run.root, resume=args.resume, progress=not args.quiet, time_limit=time_limit,
                       device=device, verify=not args.no_verify)
    if not distributed.is_main():
        return 0
    return _report(result, config, run, args)


def _report(result: TrainResult, config: TrainConfig, run: RunFolder, args) -> int:
    """Say how training went, where the checkpoint is, and the exact command to go on."""
    step, total = result.step, result.total_steps
    resume = f"pixelrnn train --resume --out {shlex.quote(str(run.root))}"
    if result.stopped == "already finished":
        print(f"{run.root} already reached step {step} of {total}: nothing to train, nothing written. "
              f"To train longer: {resume} --steps {2 * step}")
        return 0
    # For 2-level data the paper reports nats per image (binarized MNIST, table 4): show them beside bits/dim.
    binary = dataset_info(config.data)["levels"] == 2

    def nats(value: float | None) -> str:
        return f" ({value:.2f} nats/image)" if binary and value is not None else ""

    if result.train_bits_per_dim is not None:
        print(f"trained {config.model} on {args.data or config.data}: step {step}/{total}, "
              f"train bits/dim {result.train_bits_per_dim:.4f}{nats(result.train_nats_per_image)}, "
              f"{result.images_per_s:.1f} images/s")
    valid = result.valid
    if valid and valid["step"] == step:
        print(f"validation bits/dim {valid['bits_per_dim']:.4f}{nats(valid['nats_per_image'])} at step {step} "
              f"over {valid['images']} images")
    elif valid:  # a run stopped early: its last figure is older than its weights, and says so
        print(f"last validation: bits/dim {valid['bits_per_dim']:.4f}{nats(valid['nats_per_image'])} at step "
              f"{valid['step']} (not the final weights of step {step}) over the first {valid['images']} images")
    if result.stopped == "finished":
        print(f"finished at step {step} of {total}; checkpoint written to {result.checkpoint}")
        print(f"to train longer: {resume} --steps {2 * step}")
        return 0
    why = f"stopped at the time limit ({args.time_limit:g} min)" if result.stopped == "time limit" else "interrupted"
    again = f" --time-limit {args.time_limit:g}" if args.time_limit else ""
    print(f"{why} at step {step} of {total}; checkpoint written to {result.checkpoint}")
    print(f"to continue: {resume}{again}")
    return 130 if result.stopped == "interrupted" else 0


# presets

def add_presets(sub, shared: Shared) -> None:
    p = sub.add_parser("presets", help="list the named configurations, or show one in full")
    p.add_argument("name", nargs="?", help="a preset to show in full (default: list them all)")
    p.set_defaults(func=cmd_presets)


def cmd_presets(args) -> int:
    if args.name:
        print(json.dumps(TrainConfig.from_dict(preset(args.name)).to_dict(), indent=2))
        return 0
    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.values['data']:<16}{p.about}")
    print("`pixelrnn presets NAME` shows one in full; `pixelrnn train --preset NAME` trains it.")
    return 0


# evaluate

def add_evaluate(sub, shared: Shared) -> None:
    p = sub.add_parser("evaluate", help="exact bits/dim and nats/image over a data split",
                       parents=[shared.run, shared.running, shared.trained_on, shared.split, shared.data_dir,
                                shared.quiet])
    p.add_argument("--limit", type=count, help="only the first N images (default: all)")
    p.add_argument("--batch-size", type=count,
                   help="images per forward pass (speed only; default: 16 on a CPU, 256 on a GPU)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="bf16: matrix work in bfloat16")
    p.add_argument("--json", type=path,
                   help="where to write the result (default: RUN/eval-DATA-SPLIT.json for a run folder)")
    p.add_argument("--compile", action="store_true", help="score through torch.compile")
    p.set_defaults(func=cmd_evaluate)


def _model_and_data(args):
    """The checkpoint's model, and the data split to use with it (by default the data it was trained on)."""
    model = pretrained.load(args.run, verify=not args.no_verify)
    trained = training_config(pretrained.resolve(args.run))
    name = args.data or trained.get("data")
    if name is None:
        raise ConfigError("this checkpoint does not say what data it was trained on; pass --data, e.g. --data digits")
    data = load_dataset(name, args.split, args.data_dir or trained.get("data_dir"), image_size=trained.get("image_size"))
    if tuple(data.image_shape) != model.image_shape or data.levels != model.levels:
        raise PixelRNNError(f"{name} has images {data.image_shape} with {data.levels} levels, but the model was "
                            f"trained on {model.image_shape} with {model.levels} levels; pick the matching --data")
    if model.cfg.num_classes and data.labels is None:
        # Without its class bias a class-conditional model is far from what it learned (0.8 bits/dim worse on
        # Fashion-MNIST): a silent figure or completion from it would mislead.
        raise ConfigError(f"{args.run} is class-conditional, but {name} has no class labels; pick a labelled data "
                          f"set, e.g. --data {trained.get('data') or 'fashion-mnist'}")
    return model, data


def cmd_evaluate(args) -> int:
    with distributed.session(args.device) as device:  # under torchrun each process scores its part of the images
        check_precision(args.precision, device)
        with distributed.local_main_first():
            model, data = _model_and_data(args)
        name = data.name
        images = data.images if args.limit is None else data.images[:args.limit]
        labels = None if data.labels is None else data.labels[:len(images)]
        result = evaluate(model.to(device), images, labels, batch_size=args.batch_size, precision=args.precision,
                          progress=not args.quiet, compile=args.compile)
    if not distributed.is_main():
        return 0
    result.update(data=name, split=args.split, model=model.config)
    width = max(14, len(args.data or name) + 2)  # a long folder:PATH must not run into the next column
    print(f"{'data':<{width}}{'split':<8}{'images':>8}{'bits/dim':>11}{'nats/image':>13}")
    print(f"{args.data or name:<{width}}{args.split:<8}{result['images']:>8}{result['bits_per_dim']:>11.4f}"
          f"{result['nats_per_image']:>13.2f}")
    out = Path(args.json) if args.json else RunFolder(args.run).evaluation(name, args.split)
    if Path(args.run).is_dir() or args.json:
        write_atomic(out, (json.dumps(result, indent=2) + "\n").encode())
        print(f"wrote {out}")
    return 0


# sample

def add_sample(sub, shared: Shared) -> None:
    p = sub.add_parser("sample", help="draw samples into a PNG grid",
                       parents=[shared.run, shared.running, shared.generation, shared.quiet])
    p.add_argument("-n", type=count, default=64, help="number of images (per class with --per-class)")
    _output_flags(p, "samples.png", "the PNG grid to write")
    p.add_argument("--class", dest="class_label", type=int, help="the class to draw (class-conditional models)")
    p.add_argument("--per-class", action="store_true", help="a grid with one row of -n samples per class")
    p.add_argument("--method", default="fast", choices=("fast", "naive"),
                   help="fast: each layer at the new pixel only; naive: a full forward pass per value")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    output = _writable(args.output, args.force, image=True)
    model = pretrained.load(args.run, verify=not args.no_verify).to(devices.resolve_device(args.device))
    generator = devices.generator(model.device, args.seed)
    classes = model.cfg.num_classes
    model.check_labels(args.class_label)  # --class: a clear error for an unconditional model or a bad label
    if args.per_class and not classes:
        raise ConfigError("this model is not class-conditional; train it with --class-conditional to use --per-class")
    y, columns = args.class_label, None
    if args.per_class:
        y, columns = torch.arange(classes).repeat_interleave(args.n), args.n  # one row of n images per class
    x = model.sample(args.n if columns is None else len(y), temperature=args.temperature, generator=generator,
                     method=args.method, progress=not args.quiet, y=y)
    path = save_grid(x.cpu(), model.levels, output, columns=columns)
    what = f"{args.n} samples of each of {classes} classes (one row per class)" if columns else f"{args.n} samples"
    print(f"wrote {what} to {path}")
    return 0


# complete

def add_complete(sub, shared: Shared) -> None:
    p = sub.add_parser(
        "complete", help="occlude real images and sample the rest several times",
        parents=[shared.run, shared.running, shared.trained_on, shared.split, shared.data_dir, shared.generation,
                 shared.quiet],
        description="Occlude part of real images and complete them with the model, as in the paper's figure 1. "
                    "The model generates in raster order, so it conditions only on what comes before each value: "
                    "with an occlusion that is not a suffix in raster order (right-half, a box, a mask), the known "
                    "pixels after the first hidden one are kept but cannot influence the values drawn before them.")
    p.add_argument("--occlude", default="bottom-half",
                   help="bottom-half, right-half, box:x0,y0,x1,y1, or a PNG mask (white = hidden)")
    p.add_argument("-n", type=count, default=8, help="number of images")
    p.add_argument("--first", type=natural, default=0, help="index of the first image in the split")
    p.add_argument("-k", "--samples", type=count, default=4, help="completions per image")
    _output_flags(p, "completions.png", "the PNG panel to write")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    output = _writable(args.output, args.force, image=True)
    model, data = _model_and_data(args)
    model.to(devices.resolve_device(args.device))
    originals = data.images[args.first:args.first + args.n].long()
    known = occlusion(args.occlude, model.image_shape)
    # Every original is completed k times in one batch: rows of the batch are (image, completion).
    batch = originals.repeat_interleave(args.samples, dim=0)
    generator = devices.generator(model.device, args.seed)
    y = None
    if model.cfg.num_classes and data.labels is not None:  # complete each image as its own class
        y = data.labels[args.first:args.first + args.n].repeat_interleave(args.samples)
    completions = model.complete(batch, known, temperature=args.temperature, generator=generator,
                                 progress=not args.quiet, y=y)
    path = completion_panel(originals, known,
                            completions.cpu().view(len(originals), args.samples, *model.image_shape),
                            model.levels, output)
    print(f"wrote {len(originals)} x {args.samples} completions to {path}")
    return 0


# compress, decompress

def add_compress(sub, shared: Shared) -> None:
    p = sub.add_parser("compress", help="compress images losslessly with a model",
                       parents=[shared.run, shared.running, shared.split, shared.data_dir, shared.quiet])
    p.add_argument("images", nargs="*", help="PNG/JPEG files of the model's size")
    _output_flags(p, None, "the compressed file")
    p.add_argument("--limit", type=count, help="only the first N images of the split (with --data)")
    p.add_argument("--data", help="compress a split of this data set instead of files")
    p.set_defaults(func=cmd_compress)


def _load_images(args):
    """The model, and the images to compress: files, or a data-set split."""
    if args.data:
        model, data = _model_and_data(args)
        return model, data.images[:args.limit].long()
    model = pretrained.load(args.run, verify=not args.no_verify)
    if not args.images:
        raise ConfigError("give image files to compress, or --data NAME, e.g. --data digits")
    return model, torch.stack([read_image(path, model.image_shape, model.levels) for path in args.images])


def cmd_compress(args) -> int:
    devices.cpu_only(args.device, "compress")
    out = _writable(args.output, args.force)
    model, images = _load_images(args)
    if model.cfg.num_classes:  # the file format stores no class, and without one the model codes poorly
        raise ConfigError(f"{args.run} is class-conditional, and compress does not take a class; use an "
                          f"unconditional model, e.g. fashion-pixelcnn")
    data = codec.encode(model, images, progress=not args.quiet)
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
    _output_flags(p, None, "folder for the PNG files (image-00000.png, ...)")
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


# bench

def add_bench(sub, shared: Shared) -> None:
    p = sub.add_parser("bench", help="training images/s of a model configuration",
                       parents=[shared.running, shared.model, shared.data_dir])
    p.add_argument("--model", choices=model_names(), default="pixelcnn", help="model family")
    p.add_argument("--data", default="digits", help="data set whose images and shape to use")
    p.add_argument("--batch-size", type=count, default=16, help="images per step")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS,
                   help="precisions to measure")
    p.add_argument("--warmup", type=natural, default=3, help="untimed steps first")
    p.add_argument("--steps", type=count, default=10, help="timed steps (the median is reported)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    device = devices.resolve_device(args.device)
    for precision in args.precision:
        check_precision(precision, device)
    data = load_dataset(args.data, "train", args.data_dir)
    options = model_settings(args.model, _model_options(args))
    check_kernels(options, data.image_shape)
    gen = torch.Generator().manual_seed(0)
    print(f"{'model':<18}{'batch':>6}{'precision':>10}{'images/s':>10}")
    for precision in args.precision:
        torch.manual_seed(0)
        model = build_model(args.model, data.image_shape, data.levels, **options).to(device)
        batches = [data.images[torch.randint(len(data), (args.batch_size,), generator=gen)].long().to(device)
                   for _ in range(4)]
        result = train_speed(model, batches, precision, warmup=args.warmup, steps=args.steps)
        print(f"{args.model:<18}{args.batch_size:>6}{precision:>10}{result['images_per_s']:>10.1f}")
    return 0


# models

def add_models(sub, shared: Shared) -> None:
    p = sub.add_parser("models", help="list the trained models shipped with the package",
                       description="The trained models shipped with the package. Wherever a run folder is expected, "
                                   "a shipped name works too (pretrained:NAME when a folder of that name exists).")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    shipped = [pretrained.shipped(name) for name in pretrained.names()]
    if not shipped:
        print(f"none shipped yet: this pixelrnn {__version__} has no trained models built in")
        return 0
    print(f"{'name':<26}{'data':<15}{'shape':<10}{'parameters':>11}{'test bits/dim':>15}{'size':>9}")
    for model in shipped:
        r = model.record
        shape = "x".join(map(str, r["image_shape"]))
        print(f"{model.name:<26}{r['data']:<15}{shape:<10}{r['parameters']:>11,}{r['test_bits_per_dim']:>15.4f}"
              f"{model.size() / 1e6:>7.1f}MB")
    print("use a name wherever a run folder goes, e.g. `pixelrnn sample NAME -n 16`; in Python: "
          "pixelrnn.load_pretrained(NAME)")
    return 0


# plot

def add_plot(sub, shared: Shared) -> None:
    p = sub.add_parser("plot", help="training curves of runs as a PNG (needs matplotlib)",
                       description="Train and validation bits/dim against steps and against training time, one "
                                   "colour per run, from each run's metrics.csv. Needs matplotlib: "
                                   "pip install 'pixelrnn[plot]'.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, metrics.csv files or shipped model names")
    _output_flags(p, "curves.png", "the PNG to write")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    output = _writable(args.output, args.force, image=True)
    runs = {str(run): pretrained.metrics_file(run) for run in args.runs}
    print(f"wrote the curves of {len(runs)} run{'s' if len(runs) > 1 else ''} to {plot_curves(runs, output)}")
    return 0


COMMANDS = (add_train, add_evaluate, add_sample, add_complete, add_compress, add_decompress, add_bench, add_presets,
            add_models, add_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pixelrnn", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"pixelrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    shared = Shared.build()
    for add in COMMANDS:
        add(sub, shared)
    for p in sub.choices.values():
        p.formatter_class = HelpFormatter
    parser.description = (f"PixelRNN models (van den Oord et al., 2016): {', '.join(sub.choices)}. "
                          f"`pixelrnn COMMAND --help` describes each.")
    return parser


def main(argv: list[str] | None = None) -> int:
    tune()  # fewer page faults in training and sampling; see allocator.py
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PixelRNNError as e:
        sys.stderr.write(f"pixelrnn {args.command}: error: {e}{distributed.where()}\n")
        return 2
    except KeyboardInterrupt:
        # train handles Ctrl-C itself (it saves and says how to go on); this one came before or while saving.
        sys.stderr.write(f"pixelrnn {args.command}: interrupted; nothing new was written\n")
        return 130
    except Exception as e:
        if distributed.launched():  # under torchrun: one line from the rank that failed; torchrun ends the others
            sys.stderr.write(f"pixelrnn {args.command}: {distributed.describe_failure(e)}\n")
            return 1
        traceback.print_exc()  # not the user's doing: a bug, shown in full so that it can be fixed
        sys.stderr.write(f"pixelrnn {args.command}: internal error: this is a bug in pixelrnn {__version__}; please "
                         "report it with the command you ran and the traceback above\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
