"""Training configuration and named presets.

The presets name the paper's configurations ("Pixel Recurrent Neural Networks", van den Oord et al., ICML 2016,
section 5 and tables 2-4) and small ones that train on a laptop CPU. A preset is only a set of defaults: any field
can be overridden. An unknown field is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

OPTIMIZERS = ("rmsprop", "adam")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")


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
    eval_batch_size: int = 256

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, not {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.steps is not None and self.epochs is not None:
            raise ConfigError("give either steps or epochs, not both")
        for name in ("batch_size", "eval_batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.steps is not None and self.steps < 1 or self.epochs is not None and self.epochs <= 0:
            raise ConfigError("steps and epochs must be positive")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, not {self.lr}")

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


PRESETS: dict[str, dict[str, Any]] = {
    # Small, for tests and the README: trains in seconds.
    "tiny": dict(model="pixelcnn", model_options=dict(layers=1, hidden=8, head=16), data="digits", steps=30,
                 batch_size=16, eval_every=0, eval_limit=200, checkpoint_every=1000, warmup_steps=5),
    # The demo: a PixelCNN on scikit-learn's 8x8 digits, a few minutes on a laptop CPU.
    "digits": dict(model="pixelcnn", model_options=dict(layers=4, hidden=32, head=64), data="digits", steps=1500,
                   batch_size=32, lr=2e-3, eval_every=500, checkpoint_every=500),
    # CPU-sized PixelCNN for 28x28 data: 7 residual blocks, h = 64.
    "fashion-pixelcnn": dict(model="pixelcnn", model_options=dict(layers=7, hidden=64, head=64),
                             data="fashion-mnist", epochs=5, batch_size=16, eval_every=2000),
    # CPU-sized recurrent models for 28x28 data: 7 layers, h = 64.
    "fashion-row-lstm": dict(model="row_lstm", model_options=dict(layers=7, hidden=64, head=64),
                             data="fashion-mnist", epochs=2, batch_size=16, precision="bf16", eval_every=2000),
    "fashion-diagonal-bilstm": dict(model="diagonal_bilstm", model_options=dict(layers=7, hidden=64, head=64),
                                    data="fashion-mnist", epochs=1, batch_size=16, precision="bf16",
                                    eval_every=2000),
    # Multi-Scale PixelRNN (section 3.5) on CPU: a 14 x 14 image, then the rest of 28 x 28 given it.
    "fashion-multiscale": dict(model="multiscale", model_options=dict(base="pixelcnn", small=14, layers=7, hidden=64,
                                                                      head=64),
                               data="fashion-mnist", epochs=5, batch_size=16, precision="bf16", eval_every=2000),
    # Class-conditional PixelCNN on CPU: a learned per-class bias in every layer.
    "fashion-pixelcnn-classes": dict(model="pixelcnn", model_options=dict(layers=7, hidden=64, head=64,
                                                                          num_classes=10),
                                     data="fashion-mnist", epochs=5, batch_size=16, precision="bf16",
                                     eval_every=2000),
    "imagenet64-multiscale": dict(model="multiscale", model_options=dict(base="row_lstm", small=32, layers=4,
                                                                         hidden=512, head=1024, residual=False),
                                  data="imagenet64", epochs=10, batch_size=32, eval_every=10000),
    # The paper's configurations (section 5, tables 2-4). Output heads: 32 maps for MNIST, 1024 for CIFAR-10
    # and ImageNet (the paper's figure is not certain). The paper trains "until convergence"; the epoch
    # counts here are a starting point.
    "mnist-pixelcnn": dict(model="pixelcnn", model_options=dict(layers=15, hidden=16, head=32),
                           data="binarized-mnist", epochs=50, batch_size=16),
    "mnist-diagonal-bilstm-7x16": dict(model="diagonal_bilstm", model_options=dict(layers=7, hidden=16, head=32),
                                       data="binarized-mnist", epochs=50, batch_size=16),
    "mnist-diagonal-bilstm-1x32": dict(model="diagonal_bilstm", model_options=dict(layers=1, hidden=32, head=32),
                                       data="binarized-mnist", epochs=50, batch_size=16),
    "cifar10-pixelcnn": dict(model="pixelcnn", model_options=dict(layers=15, hidden=128, head=1024), data="cifar10",
                             epochs=100, batch_size=16, eval_every=5000),
    "cifar10-row-lstm": dict(model="row_lstm", model_options=dict(layers=12, hidden=128, head=1024), data="cifar10",
                             epochs=100, batch_size=16, eval_every=5000),
    "cifar10-diagonal-bilstm": dict(model="diagonal_bilstm", model_options=dict(layers=12, hidden=128, head=1024),
                                    data="cifar10", epochs=100, batch_size=16, eval_every=5000),
    # imagenet32/imagenet64 are the paper's own downsampled ImageNet (train_32x32.tar, ...), so these figures
    # compare with its table; the -resized npz sets of Chrabaszcz et al. (2017) would not.
    "imagenet32-row-lstm": dict(model="row_lstm", model_options=dict(layers=12, hidden=384, head=1024),
                                data="imagenet32", epochs=10, batch_size=32, eval_every=10000),
    "imagenet64-row-lstm": dict(model="row_lstm", model_options=dict(layers=4, hidden=512, head=1024,
                                                                     residual=False),
                                data="imagenet64", epochs=10, batch_size=32, eval_every=10000),
}


def preset(name: str) -> dict[str, Any]:
    """The fields of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
