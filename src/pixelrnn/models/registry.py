"""The model registry: every model family of "Pixel Recurrent Neural Networks" by name.

A family registers itself with ``@register`` on its model class; ``models/__init__.py`` imports each family's module
once, which is all it takes to make it buildable by name. ``build_model(name, image_shape, levels, **options)``
checks the options against the family's config dataclass (an unknown option is an error, never silently ignored)
and builds the network. ``model.config`` rebuilds it.

This module imports no family, so a family may build others through it (the multi-scale model builds its stages).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import torch

from ..errors import ConfigError
from .base import AutoregressiveModel

_REGISTRY: dict[str, type[AutoregressiveModel]] = {}


def register(model_class: type[AutoregressiveModel]) -> type[AutoregressiveModel]:
    """Make a model family available by its ``name`` (a class decorator)."""
    _REGISTRY[model_class.name] = model_class
    return model_class


def model_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def model_class(name: str) -> type[AutoregressiveModel]:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def model_defaults(name: str) -> dict[str, Any]:
    """The options of a model family with their defaults (image_shape and levels excluded).

    Args:
        name: one of ``pixelrnn.MODELS``.

    Returns:
        {option: default}, e.g. ``{"layers": 15, "hidden": 128, ...}`` for ``"pixelcnn"``.
    """
    fields = dataclasses.fields(model_class(name).Config)
    return {f.name: f.default for f in fields if f.name not in ("image_shape", "levels")}


def model_options(name: str) -> dict[str, Any]:
    """Deprecated: the former name of :func:`model_defaults`, which "model options" (a run's chosen options, as
    in ``TrainConfig.model_options``) did not describe.

    Args:
        name: one of ``pixelrnn.MODELS``.

    Returns:
        What :func:`model_defaults` returns, with a DeprecationWarning.
    """
    warnings.warn("pixelrnn.model_options is now pixelrnn.model_defaults", DeprecationWarning, stacklevel=2)
    return model_defaults(name)


def build_model(name: str, image_shape: tuple[int, int, int], levels: int, **options: Any) -> AutoregressiveModel:
    """Build a model by name.

    Args:
        name: one of ``pixelrnn.MODELS``.
        image_shape: (C, H, W), C = 1 or 3.
        levels: K, the number of discrete values per channel (256 for 8-bit images, 2 for binary data).
        **options: the family's options (``layers``, ``hidden``, ``head``, ...); see ``model_defaults(name)``.

    Returns:
        The model, in float32 on the CPU; move it with ``.to()`` like any module.
    """
    cls = model_class(name)
    valid = model_defaults(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"{name} has no option {', '.join(unknown)}; its options are: {', '.join(valid)}")
    settings = cls.Config(image_shape=tuple(image_shape), levels=levels, **options)
    return cls(settings)


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored ``model.config`` as this version reads it: options added since it was written get the value that
    rebuilds the model it describes (a checkpoint without learned initial states loads with zero states)."""
    if not isinstance(config, dict) or config.get("model") not in _REGISTRY:
        return config  # build_from_config says what is wrong
    name = config["model"]
    return {"model": name, **model_class(name).Config.upgrade({k: v for k, v in config.items() if k != "model"})}


def build_from_config(config: dict[str, Any]) -> AutoregressiveModel:
    """Rebuild a model from ``model.config``.

    Args:
        config: ``{"model": name, "image_shape": [C, H, W], "levels": K, **options}``, as ``model.config`` gives.

    Returns:
        A new model of that config, with fresh weights (load a checkpoint for trained ones).

    Raises:
        ConfigError: a key is missing, or an option is unknown or out of range.
    """
    config = dict(config)
    try:
        name = config.pop("model")
        image_shape, levels = config.pop("image_shape"), config.pop("levels")
    except KeyError as missing:
        raise ConfigError(f"model config lacks {missing}") from None
    return build_model(name, image_shape, levels, **config)


def state_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in the state dict of the model ``config`` describes, built on the meta
    device: nothing is allocated, however large the config says the model is.

    Raises:
        ConfigError: the config cannot be built, or describes tensors too large to index.
    """
    try:
        with torch.device("meta"):
            model = build_from_config(config)
    except RuntimeError as e:  # a size whose product overflows 64 bits
        raise ConfigError(f"the model is too large to build ({str(e).splitlines()[0]})") from None
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def parameter_count(config: dict[str, Any]) -> int:
    """The number of values in the state dict of the model ``config`` describes, without building it at its depth.

    Every family's count grows linearly with ``layers`` (one block, or one LSTM layer with its skip, per layer), so
    it is counted on the meta device at one and two layers and extended: a config of 10^12 layers is counted at once.
    """
    layers = config.get("layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers <= 2:
        return sum(math.prod(shape) for shape in state_shapes(config).values())
    one, two = (sum(math.prod(shape) for shape in state_shapes({**config, "layers": n}).values()) for n in (1, 2))
    return one + (layers - 1) * (two - one)
