"""What the ``pixelrnn`` commands share: the parser, the argparse types, the parent parsers and output checks.

Flags that several commands share come from the parent parsers in :class:`Shared`, defined once; each command's own
flags sit beside its handler in its module.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from .. import distributed, pretrained
from ..config import SEED_LIMIT, parse_sets
from ..data import SPLITS
from ..errors import ConfigError, OutputError
from ..explain import parse_pixel
from ..fitting import load_with_data
from ..images import image_format, read_images
from ..models import AutoregressiveModel
from ..precision import emulation_warning


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line that says where to look, and flags accepted anywhere among a command's
    positional arguments (``pixelrnn compress RUN a.png --quiet b.png``)."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        # A subcommand's parser (one without subcommands of its own) parses intermixed: plain argparse stops
        # filling a list of positionals at the first flag and refuses the paths after it. parse_known_intermixed_args
        # calls back into this method, hence the guard.
        if self._subparsers is not None or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

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


def pixel(text: str) -> tuple[int, int]:
    """An argparse type: a pixel as ROW,COL, two whole numbers from 0 (checked against the image later)."""
    try:
        return parse_pixel(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
        """Every parent parser, with its flags."""
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


def model_flags(args: argparse.Namespace) -> dict:
    """The model flags given: --layers, --hidden, --head and --set, as one dict (the --set values still as text).

    Not the model's options (their defaults are :func:`pixelrnn.model_defaults`): only what the command line sets.

    Args:
        args: the parsed flags of a command with the ``Shared.model`` parent.

    Returns:
        The flags given, by option name; the ones left out are absent.
    """
    flags = {name: getattr(args, name) for name in ("layers", "hidden", "head") if getattr(args, name) is not None}
    return {**flags, **parse_sets(args.set)}


def output_flags(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    """Add -o/--output (``default``, or required when None) and --force to ``p``; ``what`` is the help of -o."""
    p.add_argument("-o", "--output", type=path, default=default, required=default is None, help=what)
    p.add_argument("--force", action="store_true", help="overwrite the output if it exists")


def writable(path: str | Path, force: bool, image: bool = False) -> Path:
    """``path``, unless it exists and --force was not given: an earlier result is never replaced by surprise.

    Checked before the long work that fills it: a directory, or an image name PIL cannot write, fails at once.

    Args:
        path: the output file.
        force: whether --force was given.
        image: the file is an image, whose format its name must say.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: ``path`` is a directory.
        ConfigError: ``path`` exists and ``force`` is false, or an image name says no format PIL can write.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file name")
    if image:
        image_format(path)
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it, or -o another name")
    return path


def warn_if_emulated(precision: str, device) -> None:
    """One warning line on stderr (rank 0 only) where bf16 was asked for by name and the device emulates it.

    Args:
        precision: the ``--precision`` given, before "auto" is resolved (auto never warns).
        device: the torch.device the network runs on.
    """
    if distributed.is_main() and (line := emulation_warning(precision, device)) is not None:
        sys.stderr.write(line + "\n")


class Chosen(NamedTuple):
    """The model and the real images a command works on (see :func:`chosen_images`)."""

    model: AutoregressiveModel
    images: torch.Tensor  # int64 [n, C, H, W]
    labels: torch.Tensor | int | None  # class labels for a class-conditional model, else None
    names: list[str]  # one per image: its file, or SPLIT[INDEX]


def chosen_images(args: argparse.Namespace, count: int, count_flag: str) -> Chosen:
    """The model of ``args.run`` and the images given: ``args.images`` files, else ``count`` images of the split.

    Reads the flags run, images, data, split, data_dir, first, class_label and no_verify. Files carry no class, so
    a class-conditional model needs --class with them; a split's own labels are used otherwise (--class replaces
    them).

    Args:
        args: the parsed flags.
        count: how many images of the split, from ``args.first``.
        count_flag: the flag that set ``count`` (e.g. "-n"), for the warning when the split is shorter.

    Returns:
        A :class:`Chosen`; the model is on the CPU.
    """
    if args.images:
        if args.data:
            raise ConfigError("give image files or --data NAME, not both")
        model = pretrained.load(args.run, verify=not args.no_verify)
        if model.settings.num_classes and args.class_label is None:
            raise ConfigError(f"the model is class-conditional, and image files carry no class; pass --class N "
                              f"(0..{model.settings.num_classes - 1}) for the class of every image")
        images = read_images(args.images, model.image_shape, model.levels)
        return Chosen(model, images, args.class_label, [Path(name).name for name in args.images])
    model, data = load_with_data(args.run, args.data, args.split, args.data_dir, verify=not args.no_verify)
    held = len(data.images)
    if args.first >= held:
        raise ConfigError(f"--first {args.first} is past the end of the {args.split} split of {data.name}, which "
                          f"holds {held} images (0..{held - 1})")
    if args.first + count > held:
        print(f"warning: the {args.split} split of {data.name} holds {held - args.first} images from --first "
              f"{args.first}, not {count_flag} {count}; using those", file=sys.stderr)
    chosen = range(args.first, min(held, args.first + count))
    labels = None if data.labels is None or not model.settings.num_classes else data.labels[chosen.start:chosen.stop]
    return Chosen(model, data.images[chosen.start:chosen.stop].long(),
                  labels if args.class_label is None else args.class_label, [f"{args.split}[{k}]" for k in chosen])
