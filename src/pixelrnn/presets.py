"""Named presets: the paper's configurations, and small ones that train on a laptop CPU.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 5 and tables 2-4, give the sizes of the
paper's models; the CPU-sized presets shrink them to train in minutes to an hour. A preset is data, a set of
:class:`~pixelrnn.config.TrainConfig` fields; any of them can be overridden (``pixelrnn train --preset NAME``
with flags, or ``TrainConfig.from_dict(preset(NAME)).replace(...)`` in Python). No preset sets a precision: the
default, "auto", is bf16 where the machine runs it natively and fp32 elsewhere, where bf16 would be emulated and
many times slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


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
    "fashion-row-lstm": Preset("CPU-sized Row LSTM: 7 layers, h = 64, 2 epochs", dict(
        model="row_lstm", model_options=dict(layers=7, hidden=64, head=64), data="fashion-mnist", epochs=2,
        batch_size=16, eval_every=2000), cpu=True),
    "fashion-diagonal-bilstm": Preset("CPU-sized Diagonal BiLSTM: 7 layers, h = 64, 1 epoch", dict(
        model="diagonal_bilstm", model_options=dict(layers=7, hidden=64, head=64), data="fashion-mnist", epochs=1,
        batch_size=16, eval_every=2000), cpu=True),
    "fashion-multiscale": Preset("Multi-Scale PixelRNN (section 3.5): 14x14, then 28x28 given it; PixelCNN base",
                                 dict(model="multiscale", model_options=dict(base="pixelcnn", small=14, layers=7,
                                                                             hidden=64, head=64),
                                      data="fashion-mnist", epochs=5, batch_size=16, eval_every=2000), cpu=True),
    "fashion-multiscale-3": Preset("Multi-Scale PixelRNN with three levels: 7x7, 14x14 given it, 28x28 given that; "
                                   "PixelCNN base", dict(model="multiscale",
                                                         model_options=dict(base="pixelcnn", small=[7, 14], layers=7,
                                                                            hidden=64, head=64),
                                                         data="fashion-mnist", epochs=5, batch_size=16,
                                                         eval_every=2000)),
    "fashion-pixelcnn-classes": Preset("class-conditional PixelCNN: a learned per-class bias in every layer", dict(
        model="pixelcnn", model_options=dict(layers=7, hidden=64, head=64, num_classes=10), data="fashion-mnist",
        epochs=5, batch_size=16, eval_every=2000)),
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
    # The paper's 64x64 multi-scale model: 32x32 first (s = 32, the paper's figure is not certain), then 64x64
    # given it: two levels, each the paper's 64x64 Row LSTM (4 layers, h = 512, no residual), batch 32.
    "imagenet64-multiscale": Preset("the paper's Multi-Scale Row LSTM for 64x64 ImageNet: 32x32, then 64x64 (GPU)", dict(
        model="multiscale", model_options=dict(base="row_lstm", small=[32], layers=4, hidden=512, head=1024,
                                               residual=False),
        data="imagenet64", epochs=10, batch_size=32, eval_every=10000)),
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


# The fashion-* presets' model (7 layers, h = 64, head 64 on 28 x 28 grey images) trains in minutes to an hour on
# one core. For another image shape, h shrinks with the square root of the pixels, and by another sqrt(2) for
# colour (three colour groups and a 3K-way head), so that the work per step stays about the same.
CPU_LAYERS, CPU_HIDDEN, CPU_HEAD = 7, 64, 64


def cpu_sized(image_shape: tuple[int, int, int]) -> dict[str, int]:
    """A CPU-sized model's ``layers``, ``hidden`` and ``head`` for images of ``image_shape`` (C, H, W).

    1x28x28 gives the fashion presets' 7 / 64 / 64; 3x32x32 gives h = 32 (a step of 16 images in well under a
    second on one core, PixelCNN in fp32); h is a multiple of 16, from 16 to 64.
    """
    channels, height, width = image_shape
    budget = 28 * 28 * CPU_HIDDEN**2 / (2 if channels == 3 else 1)
    hidden = int((budget / (height * width)) ** 0.5) // 16 * 16
    return dict(layers=CPU_LAYERS, hidden=max(16, min(CPU_HIDDEN, hidden)), head=CPU_HEAD)


def paper_preset(data: str, model: str) -> str | None:
    """The paper's configuration of a model for a data set, if there is one (e.g. cifar10-pixelcnn)."""
    return next((name for name, p in PRESETS.items()
                 if not p.cpu and p.values["data"] == data and p.values["model"] == model
                 and "the paper" in p.about), None)


def default_preset(data: str, model: str) -> str | None:
    """The CPU-sized preset for a data set and model, if there is one (what `train --data D` uses by default)."""
    return next((name for name, p in PRESETS.items()
                 if p.cpu and p.values["data"] == data and p.values["model"] == model), None)
