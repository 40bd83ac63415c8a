"""Training configuration: the typed, frozen :class:`TrainConfig`, and how flags and ``--set`` values reach it.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 5, trains with RMSProp at batch size 16;
the other fields (learning rate, schedule, clipping) are this implementation's choices. The named presets live in
:mod:`pixelrnn.presets`. An unknown field is an error, never silently ignored, and text from the command line is
read as each field's declared type.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .data import absolute_name, require_labels
from .errors import ConfigError
from .models import model_class, parse_sizes
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
    precision: str = "auto"  # bf16 where the device runs it natively, else fp32 (precision.resolve_precision)
    seed: int = 0
    eval_every: int = 1000  # steps between validation passes (0: only at the end)
    eval_limit: int | None = 2000  # validation images per periodic pass (the final pass uses the whole split)
    checkpoint_every: int = 500
    log_every: int = 20
    eval_batch_size: int | None = None  # images per validation pass; none: by device (devices.eval_batch_size)
    grad_accum: int = 1  # micro-steps per optimizer step; batch_size is the global batch they (and the ranks) share
    compile: bool = False  # run the training steps and validation through torch.compile

    def __post_init__(self):
        for name, declared in field_types(TrainConfig).items():
            object.__setattr__(self, name, typed(_named(name), declared, getattr(self, name)))
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


def field_types(config_class: type) -> dict[str, Any]:
    """The declared type of each field of a config dataclass, as types (not the strings that annotations are
    under ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class)}


def _members(declared: Any) -> tuple[list[Any], bool]:
    """The types a declared type admits besides None, and whether None is one of them."""
    union = isinstance(declared, types.UnionType) or typing.get_origin(declared) is typing.Union
    members = list(typing.get_args(declared)) if union else [declared]
    return [m for m in members if m is not type(None)], type(None) in members


def typed(name: str, declared: Any, value: Any) -> Any:
    """``value`` as the declared type of an option (``bool``, ``int | None``, ...), or a ConfigError.

    Text (from ``--set``) is parsed: booleans as true/false, 1/0, yes/no or on/off in any case; numbers as numbers,
    finite; ``none`` for an optional value. A value of another type is refused, never stored as it came: a string
    where a boolean belongs would be true whatever it says.
    """
    kinds, optional = _members(declared)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional or value is not None:
            return None
        raise ConfigError(f"{name} needs a value, not none")
    if any(typing.get_origin(k) is tuple for k in kinds):  # one size or several: "14", "7,14", "[7, 14]"
        if isinstance(value, str):
            sizes = parse_sizes(value)
            if sizes is None:
                raise ConfigError(f"{name} takes a whole number or a comma-separated list, e.g. 7,14, not {value!r}")
            return sizes[0] if len(sizes) == 1 else sizes
        return value  # the model's own config checks a list or a number
    if len(kinds) != 1 or kinds[0] not in (bool, int, float, str):
        return value  # a structured field (e.g. model_options): its owner checks it
    kind = kinds[0]
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            value = {bool: lambda: BOOLEANS[text.lower()], int: lambda: int(text), float: lambda: float(text)}[kind]()
        except (KeyError, ValueError):
            example = {bool: "true or false", int: "a whole number such as 3", float: "a number such as 0.001"}[kind]
            raise ConfigError(f"{name} takes {example}, not {value!r}") from None
    wrong = {bool: not isinstance(value, bool),
             int: not isinstance(value, int) or isinstance(value, bool),
             float: not isinstance(value, (int, float)) or isinstance(value, bool),
             str: not isinstance(value, str)}[kind]
    if wrong:
        raise ConfigError(f"{name} must be {'an' if kind is int else 'a'} {kind.__name__}, not {value!r}")
    if kind is float:
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
    fields = field_types(model_class(model).Config)
    out = {}
    for key, value in options.items():
        if key in FROM_DATA:
            raise ConfigError(f"{key} is not an option: it is {FROM_DATA[key]}; choose the data with --data")
        if key not in fields:
            raise ConfigError(f"{model} has no option {key}; its options are: "
                              f"{', '.join(k for k in fields if k not in FROM_DATA)}")
        out[key] = typed(f"{key} (--set {key}=...)", fields[key], value)
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

