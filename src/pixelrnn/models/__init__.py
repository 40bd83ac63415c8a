"""The model families of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), by name.

Each family lives in one module: its config, its network, its fast scan and its stepper side by side, and a
``@register`` on its model class. Importing the module below is its one registration line; the order of these
lines is the order of ``pixelrnn.MODELS``.
"""

from __future__ import annotations

from . import pixelcnn  # noqa: F401  (registers "pixelcnn")
from . import row_lstm  # noqa: F401  (registers "row_lstm")
from . import diagonal_bilstm  # noqa: F401  (registers "diagonal_bilstm")
from . import multiscale  # noqa: F401  (registers "multiscale")
from .base import AutoregressiveModel, ModelConfig, Stepper
from .multiscale import parse_sizes
from .registry import (build_from_config, build_model, model_class, model_defaults, model_names, model_options,
                       register, upgrade_config)

__all__ = ["AutoregressiveModel", "ModelConfig", "Stepper", "build_from_config", "build_model", "model_class",
           "model_defaults", "model_names", "model_options", "parse_sizes", "register", "upgrade_config"]
