"""Training configuration and named presets.

The presets name the paper's configurations ("Pixel Recurrent Neural Networks", van den Oord et al., ICML 2016,
section 5 and tables 2-4) and small ones that train on a laptop CPU. A preset is only a set of defaults: any field
can be overridden. An unknown field is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .data import absolute_name, require_labels
from .errors import ConfigError
from .models import model_class
from .precision import PRECISIONS

OPTIMIZERS = ("rmsprop", "adam")
SCHEDULES = ("constant", "cosine")
SEED_LIMIT = 2**63  # seeds lie in [0, 2**63): every one of them seeds torch, whatever is added to it
# What --set accepts for a boolean option, in any case.
BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
# Options that the data set decides; `train` sets them itself.
FROM_DATA = {"levels": "the data set's number of levels", "image_shape": "the data set's image shape (--image-size "
             "resizes folder:PATH images)"}


# The fields that `pixelrnn train` sets with a flag of their own (--batch-size sets batch_size); every other field
# is set with --set FIELD=VALUE, as model options are.
FLAG_FIELDS = ("model", "data", "data_dir", "image_size", "steps", "epochs", "batch_size", "precision", "optimizer",
               "lr", "seed", "eval_every", "checkpoint_every", "grad_accum", "compile")


def _named(field_name: str) -> str:
    """A config field as both the library and the command line call it: ``batch_size (--batch-size)``."""
    if field_name in FLAG_FIELDS:
        return f"{field_name} (--{field_name.replace('_', '-')})"
    return f"{field_name} (--set {field_name}=...)"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run."""

    model: str = "pixelcnn"
    model_options: dict[str, Any] = field(default_factory=dict)  # passed to build_model (layers, hidden, head, ...)
    data: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None  # only for folder:PATH data sets
    steps: int | None = None  # total optimizer steps; or give epochs
    epochs: float | None = None
    batch_size: int = 16  # the paper's batch size for MNIST and CIFAR-10
    optimizer: str = "rmsprop"  # the paper's choice; it gives no learning rate or clipping, these are ours
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    precision: str = "fp32"
    seed: int = 0
    eval_every: int = 1000  # steps between validation passes (0: only at the end)
    eval_limit: int | None = 2000  # validation images per periodic pass (the final pass uses the whole split)
    checkpoint_every: int = 500
    log_every: int = 20
    eval_batch_size: int | None = None  # images per validation pass; none: by device (devices.eval_batch_size)
    grad_accum: int = 1  # micro-steps per optimizer step; batch_size is the global batch they (and the ranks) share
    compile: bool = False  # run the training steps and validation through torch.compile

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.type != "dict[str, Any]":
                object.__setattr__(self, f.name, typed(_named(f.name), f.type, getattr(self, f.name)))
        if not isinstance(self.model_options, dict):
            raise ConfigError(f"model_options must be a dict of model options, not {self.model_options!r}")
        for name, choices in (("optimizer", OPTIMIZERS), ("lr_schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{_named(name)} must be one of {', '.join(choices)}, not {getattr(self, name)!r}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give either --steps or --epochs, not both")
        for name in ("batch_size", "eval_batch_size", "log_every", "checkpoint_every", "steps", "grad_accum"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{_named(name)} must be at least 1, e.g. {getattr(TrainConfig, name) or 1}, "
                                  f"not {value}")
        for name in ("epochs", "lr"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{_named(name)} must be positive, e.g. {getattr(TrainConfig, name) or 1}, "
                                  f"not {value}")
        for name in ("warmup_steps", "grad_clip", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{_named(name)} must be 0 or more, e.g. {getattr(TrainConfig, name)}, "
                                  f"not {getattr(self, name)}")
        for name in ("eval_limit", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{_named(name)} must be at least 1 (or none), not {value}")
        if not 0 <= self.seed < SEED_LIMIT:
            raise ConfigError(f"{_named('seed')} must lie in [0, 2**63), e.g. 0, not {self.seed}")

    def total_steps(self, train_images: int) -> int:
        """The number of optimizer steps, from ``steps`` or ``epochs`` (1000 steps if neither is given)."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * train_images / self.batch_size))
        return 1000

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option {', '.join(unknown)}; the options are: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class Preset:
    """A named set of defaults: what it is for, and the config fields it sets."""

    about: str
    values: dict[str, Any]
    cpu: bool = False  # trains on a laptop CPU in minutes to an hour: the default for its data set and model


PRESETS: dict[str, Preset] = {
    "tiny": Preset("for tests: a 1-block PixelCNN on 8x8 digits, seconds", dict(
        model="pixelcnn", model_options=dict(layers=1, hidden=8, head=16), data="digits", steps=30, batch_size=16,
        eval_every=0, eval_limit=200, checkpoint_every=1000, warmup_steps=5)),
    "digits": Preset("the demo: a PixelCNN on 8x8 digits, about a minute on a laptop CPU", dict(
        model="pixelcnn", model_options=dict(layers=4, hidden=32, head=64), data="digits", steps=1500, batch_size=32,
        lr=2e-3, eval_every=500, checkpoint_every=500), cpu=True),
    "fashion-pixelcnn": Preset("CPU-sized PixelCNN for 28x28 data: 7 blocks, h = 64, 5 epochs", dict(
        model="pixelcnn", model_options=dict(layers=7, hidden=64, head=64), data="fashion-mnist", epochs=5,
        batch_size=16, eval_every=2000), cpu=True),
    "fashion-row-lstm": Preset("CPU-sized Row LSTM: 7 layers, h = 64, bf16, 2 epochs", dict(
        model="row_lstm", model_options=dict(layers=7, hidden=64, head=64), data="fashion-mnist", epochs=2,
        batch_size=16, precision="bf16", eval_every=2000), cpu=True),
    "fashion-diagonal-bilstm": Preset("CPU-sized Diagonal BiLSTM: 7 layers, h = 64, bf16, 1 epoch", dict(
        model="diagonal_bilstm", model_options=dict(layers=7, hidden=64, head=64), data="fashion-mnist", epochs=1,
        batch_size=16, precision="bf16", eval_every=2000), cpu=True),
    "fashion-multiscale": Preset("Multi-Scale PixelRNN (section 3.5): 14x14, then 28x28 given it; PixelCNN base",
                                 dict(model="multiscale", model_options=dict(base="pixelcnn", small=14, layers=7,
                                                                             hidden=64, head=64),
                                      data="fashion-mnist", epochs=5, batch_size=16, precision="bf16",
                                      eval_every=2000), cpu=True),
    "fashion-multiscale-3": Preset("Multi-Scale PixelRNN with three levels: 7x7, 14x14 given it, 28x28 given that; "
                                   "PixelCNN base", dict(model="multiscale",
                                                         model_options=dict(base="pixelcnn", small=[7, 14], layers=7,
                                                                            hidden=64, head=64),
                                                         data="fashion-mnist", epochs=5, batch_size=16,
                                                         precision="bf16", eval_every=2000)),
    "fashion-pixelcnn-classes": Preset("class-conditional PixelCNN: a learned per-class bias in every layer", dict(
        model="pixelcnn", model_options=dict(layers=7, hidden=64, head=64, num_classes=10), data="fashion-mnist",
        epochs=5, batch_size=16, precision="bf16", eval_every=2000)),
    # The paper's 64x64 multi-scale model: 32x32 first (s = 32, the paper's figure is not certain), then 64x64
    # given it: two levels, each the paper's 64x64 Row LSTM (4 layers, h = 512, no residual), batch 32.
    "imagenet64-multiscale": Preset("the paper's Multi-Scale Row LSTM for 64x64 ImageNet: 32x32, then 64x64 (GPU)", dict(
        model="multiscale", model_options=dict(base="row_lstm", small=[32], layers=4, hidden=512, head=1024,
                                               residual=False),
        data="imagenet64", epochs=10, batch_size=32, eval_every=10000)),
    # The paper's configurations (section 5, tables 2-4). Output heads: 32 maps for MNIST, 1024 for CIFAR-10
    # and ImageNet (the paper's figure is not certain). The paper trains "until convergence"; the epoch
    # counts here are a starting point.
    "binarized-mnist-pixelcnn": Preset("the paper's PixelCNN for binarized MNIST (table 4)", dict(
        model="pixelcnn", model_options=dict(layers=15, hidden=16, head=32), data="binarized-mnist", epochs=50,
        batch_size=16)),
    "binarized-mnist-row-lstm": Preset("the paper's Row LSTM for binarized MNIST, 7 layers, h = 16 (table 4)", dict(
        model="row_lstm", model_options=dict(layers=7, hidden=16, head=32), data="binarized-mnist", epochs=50,
        batch_size=16)),
    "binarized-mnist-diagonal-bilstm-7x16": Preset("the paper's Diagonal BiLSTM, 7 layers, h = 16 (table 4)", dict(
        model="diagonal_bilstm", model_options=dict(layers=7, hidden=16, head=32), data="binarized-mnist",
        epochs=50, batch_size=16)),
    "binarized-mnist-diagonal-bilstm-1x32": Preset("the paper's Diagonal BiLSTM, 1 layer, h = 32 (table 4)", dict(
        model="diagonal_bilstm", model_options=dict(layers=1, hidden=32, head=32), data="binarized-mnist",
        epochs=50, batch_size=16)),
    "cifar10-pixelcnn": Preset("the paper's PixelCNN for CIFAR-10, 15 blocks, h = 128 (table 3; GPU)", dict(
        model="pixelcnn", model_options=dict(layers=15, hidden=128, head=1024), data="cifar10", epochs=100,
        batch_size=16, eval_every=5000)),
    "cifar10-row-lstm": Preset("the paper's Row LSTM for CIFAR-10, 12 layers, h = 128 (table 3; GPU)", dict(
        model="row_lstm", model_options=dict(layers=12, hidden=128, head=1024), data="cifar10", epochs=100,
        batch_size=16, eval_every=5000)),
    "cifar10-diagonal-bilstm": Preset("the paper's Diagonal BiLSTM for CIFAR-10, 12 layers, h = 128 (table 3; GPU)",
                                      dict(model="diagonal_bilstm",
                                           model_options=dict(layers=12, hidden=128, head=1024), data="cifar10",
                                           epochs=100, batch_size=16, eval_every=5000)),
    # imagenet32/imagenet64 are the paper's own downsampled ImageNet (train_32x32.tar, ...), so these figures
    # compare with its table; the -resized npz sets of Chrabaszcz et al. (2017) would not.
    "imagenet32-row-lstm": Preset("the paper's Row LSTM for 32x32 ImageNet, 12 layers, h = 384 (GPU)", dict(
        model="row_lstm", model_options=dict(layers=12, hidden=384, head=1024), data="imagenet32", epochs=10,
        batch_size=64, eval_every=10000)),  # the paper: batch 64 at 32x32, 32 at 64x64
    "imagenet64-row-lstm": Preset("the paper's Row LSTM for 64x64 ImageNet, 4 layers, h = 512 (GPU)", dict(
        model="row_lstm", model_options=dict(layers=4, hidden=512, head=1024, residual=False), data="imagenet64",
        epochs=10, batch_size=32, eval_every=10000)),
}

# Presets are named after the data they train on; these old names said "mnist" for binarized MNIST. Nothing was
# released under them, so they are not aliases: using one is an error that names the new name.
RENAMED = {"mnist-pixelcnn": "binarized-mnist-pixelcnn",
           "mnist-diagonal-bilstm-7x16": "binarized-mnist-diagonal-bilstm-7x16",
           "mnist-diagonal-bilstm-1x32": "binarized-mnist-diagonal-bilstm-1x32"}


def preset(name: str) -> dict[str, Any]:
    """The fields of a named preset."""
    if name in RENAMED:
        raise ConfigError(f"preset {name!r} is now called {RENAMED[name]!r} (presets are named after their data); "
                          f"pass --preset {RENAMED[name]}")
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)} (`pixelrnn presets` "
                          f"describes them)")
    return dict(PRESETS[name].values)


def default_preset(data: str, model: str) -> str | None:
    """The CPU-sized preset for a data set and model, if there is one (what `train --data D` uses by default)."""
    return next((name for name, p in PRESETS.items()
                 if p.cpu and p.values["data"] == data and p.values["model"] == model), None)


def typed(name: str, declared: str, value: Any) -> Any:
    """``value`` as the declared type of an option (``"bool"``, ``"int | None"``, ...), or a ConfigError.

    Text (from ``--set``) is parsed: booleans as true/false, 1/0, yes/no or on/off in any case; numbers as numbers,
    finite; ``none`` for an optional value. A value of another type is refused, never stored as it came: a string
    where a boolean belongs would be true whatever it says.
    """
    optional = declared.endswith("| None")
    kind = declared.removesuffix("| None").strip()
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional or value is not None:
            return None
        raise ConfigError(f"{name} needs a value, not none")
    if isinstance(value, str) and kind == "int | tuple[int, ...]":  # one size or several: "14", "7,14", "[7, 14]"
        try:
            sizes = tuple(int(part) for part in value.strip().strip("[]()").split(","))
        except ValueError:
            raise ConfigError(f"{name} takes a whole number or a comma-separated list, e.g. 7,14, not {value!r}") \
                from None
        return sizes[0] if len(sizes) == 1 else sizes
    if isinstance(value, str) and kind != "str":
        text = value.strip()
        try:
            value = {"bool": lambda: BOOLEANS[text.lower()], "int": lambda: int(text),
                     "float": lambda: float(text)}[kind]()
        except (KeyError, ValueError):
            example = {"bool": "true or false", "int": "a whole number such as 3",
                       "float": "a number such as 0.001"}.get(kind)
            if example is None:
                raise ConfigError(f"{name} cannot be given as text ({value!r})") from None
            raise ConfigError(f"{name} takes {example}, not {value!r}") from None
    wrong = {"bool": not isinstance(value, bool),
             "int": not isinstance(value, int) or isinstance(value, bool),
             "float": not isinstance(value, (int, float)) or isinstance(value, bool),
             "str": not isinstance(value, str)}.get(kind, False)
    if wrong:
        raise ConfigError(f"{name} must be {'an' if kind == 'int' else 'a'} {kind}, not {value!r}")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, e.g. 1.0, not {value}")
    return value


def parse_sets(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items as a dict of text; :func:`merge` and :func:`model_settings` read each value as the
    declared type of its option."""
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, e.g. --set residual=false, not {item!r}")
        if key in FROM_DATA:
            raise ConfigError(f"--set {key} is not an option: it is {FROM_DATA[key]}; choose the data with --data")
        values[key] = text
    return values


def model_settings(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """Model options, each read as its declared type in the family's config; an unknown one is an error.

    Kernel sizes (``kernel``, ``first_kernel``) must also be odd: a masked convolution is centred on its pixel.
    """
    fields = {f.name: f.type for f in dataclasses.fields(model_class(model).Config)}
    out = {}
    for key, value in options.items():
        if key in FROM_DATA:
            raise ConfigError(f"{key} is not an option: it is {FROM_DATA[key]}; choose the data with --data")
        if key not in fields:
            raise ConfigError(f"{model} has no option {key}; its options are: "
                              f"{', '.join(k for k in fields if k not in FROM_DATA)}")
        out[key] = typed(f"{key} (--set {key}=...)", str(fields[key]), value)
        if key.endswith("kernel") and out[key] % 2 == 0:
            raise ConfigError(f"{key} (--set {key}=...) must be odd, e.g. 3, not {out[key]}")
    return out


def check_kernels(options: dict[str, Any], image_shape: tuple[int, int, int]) -> None:
    """Refuse a kernel larger than the image: its taps would see nothing but padding."""
    side = max(image_shape[1:])
    for key, value in options.items():
        if key.endswith("kernel") and isinstance(value, int) and value > side:
            raise ConfigError(f"{key} (--set {key}=...) must be odd and at most the image side {side}, not {value}; "
                              f"e.g. --set {key}=3")


def merge(base: dict[str, Any], flags: dict[str, Any], sets: dict[str, Any],
          class_conditional: bool = False) -> TrainConfig:
    """A training config: ``base`` (a preset, or a resumed run's own settings), then the flags given, then --set.

    Args:
        base: config fields to start from.
        flags: fields given by flag; None means "not given". ``steps`` and ``epochs`` replace each other.
        sets: --set values: a config field sets that field, anything else is a model option (layers, residual, ...).
        class_conditional: condition the model on the data set's class labels.
    """
    values = dict(base)
    given = {k: v for k, v in flags.items() if v is not None}
    if "steps" in given:
        values.pop("epochs", None)
    if "epochs" in given:
        values.pop("steps", None)
    values.update(given)
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_options"}
    values.update({k: v for k, v in sets.items() if k in fields})
    options = {k: v for k, v in sets.items() if k not in fields}
    if "data" in values:  # a folder:PATH is stored absolute, so the run works from any directory
        values["data"] = absolute_name(values["data"])
    if class_conditional:
        options["num_classes"] = require_labels(values.get("data", TrainConfig.data))
    if options:
        values["model_options"] = {**values.get("model_options", {}), **options}
    if "model_options" in values:
        values["model_options"] = model_settings(values.get("model", TrainConfig.model), values["model_options"])
    return TrainConfig.from_dict(values)

