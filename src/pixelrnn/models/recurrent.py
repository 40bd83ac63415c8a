"""What the Row LSTM and the Diagonal BiLSTM share: the residual/skip stack around their LSTM layers.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), sections 3.1-3.3:

- a 7 x 7 mask-A convolution reads the image into 2h maps; each LSTM layer (equation 3, :mod:`.lstm_cell`) reads
  the 2h maps, keeps h-dimensional states, and maps them back to 2h with a 1 x 1 mask-B convolution that is added
  to its input (residual);
- each layer's 2h output also reaches the output head through its own learned 1 x 1 convolution (skip).

Both connections can be switched off (``residual=False``, ``skip=False``) to rerun the paper's ablation. With skip
connections the head reads the sum of the skips; without, it reads the last layer's output. The initial states of every LSTM layer are learned (section 5.2 of the paper)
unless ``learn_initial_state=False``, which gives zero states.

The loop over the layers is written out in ``RecurrentPixelModel.forward`` (whole maps) and mirrored in
:class:`RecurrentStepper` (one pixel's features, fast generation); a test holds the two to the same logits. Each family's layer module provides the three
forms of its layer: ``forward`` (the fast scan), ``forward_reference`` (plain convolutions) and ``stepper``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import ColourGroups, MaskedConv2d
from .base import AutoregressiveModel, ModelConfig, Stepper
from .layers import ConvAt, OutputHead, linear_of


@dataclass(frozen=True)
class RecurrentConfig(ModelConfig):
    layers: int = 12  # the paper's CIFAR-10 models
    hidden: int = 128  # h
    head: int = 1024
    residual: bool = True
    skip: bool = True
    first_kernel: int = 7
    learn_initial_state: bool = True  # section 5.2: the initial recurrent states are learned; False: zero states

    BEFORE: ClassVar[dict[str, Any]] = {"learn_initial_state": False}


class LayerStepper:
    """One LSTM layer evaluated one pixel at a time, from its own caches (each family's layer makes its own)."""

    def at(self, stream: torch.Tensor, i: int, j: int, bias: torch.Tensor | None) -> torch.Tensor:
        """(B, h): the layer's states at pixel (i, j), given its input ``stream`` (B, 2h) there."""
        raise NotImplementedError  # pragma: no cover - abstract

    def end_row(self, i: int, bias: torch.Tensor | None) -> None:
        """Row i is complete (``bias``: the row's conditioning bias (B, W, 4h or 8h), or None)."""


class RecurrentPixelModel(AutoregressiveModel):
    """The stack of the LSTM models: mask-A input conv, LSTM layers with residual and skip paths, output head.

    Subclasses provide ``make_layer(colours)``, a module mapping the 2h input maps (B, 2h, H, W), and an optional
    bias for its input-to-state map, to the layer's h states (B, h, H, W); the module also has
    ``stepper(batch, height, width, like)`` returning a :class:`LayerStepper`.
    """

    Config = RecurrentConfig

    def __init__(self, settings: RecurrentConfig):
        super().__init__(settings)
        colours, h = settings.colours, settings.hidden
        self.input = MaskedConv2d(colours.count, 2 * h, settings.first_kernel, "A", colours)
        self.lstm_layers = nn.ModuleList(self.make_layer(colours) for _ in range(settings.layers))
        self.outputs = nn.ModuleList(MaskedConv2d(h, 2 * h, 1, "B", colours) for _ in range(settings.layers))
        if settings.skip:
            self.skips = nn.ModuleList(MaskedConv2d(2 * h, 2 * h, 1, "B", colours) for _ in range(settings.layers))
        self.head = OutputHead(2 * h, settings.head, settings.levels, colours)
        self.make_conditioning([layer.input_to_state.out_channels for layer in self.lstm_layers])

    def make_layer(self, colours: ColourGroups) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        self.check_images(x)
        biases = self.layer_biases(y, context) or [None] * len(self.lstm_layers)
        stream = self.input(self.to_inputs(x))  # (B, 2h, H, W)
        skip_sum = None
        for k, layer in enumerate(self.lstm_layers):
            out = self.outputs[k](layer(stream, biases[k]))  # (B, h, H, W) states -> (B, 2h, H, W)
            stream = stream + out if self.settings.residual else out
            if self.settings.skip:
                skipped = self.skips[k](out)  # (B, 2h, H, W)
                skip_sum = skipped if skip_sum is None else skip_sum + skipped
        return self.head(skip_sum if self.settings.skip else stream)  # (B, K, C, H, W)

    def stepper(self, batch: int, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> RecurrentStepper:
        return RecurrentStepper(self, batch, y=y, context=context)


class RecurrentStepper(Stepper):
    """A recurrent model at one pixel at a time: the loop of ``RecurrentPixelModel.forward``, on one pixel."""

    def __init__(self, model: RecurrentPixelModel, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        self.input = ConvAt(model.input)
        self.layers = [layer.stepper(batch, self.height, self.width, self.like) for layer in model.lstm_layers]
        convs = [*model.outputs, *(model.skips if model.settings.skip else [])]
        self.linear = {conv: linear_of(conv) for conv in convs}  # masked once, not at every pixel

    def logits(self, x, i, j):
        """The loop of ``RecurrentPixelModel.forward`` at one pixel."""
        model = self.model
        stream = self.input.on_image(x, i, j, model.to_inputs)  # (B, 2h)
        skip_sum = None
        for k, layer in enumerate(self.layers):
            states = layer.at(stream, i, j, self.bias(k, i, j))  # (B, h)
            out = F.linear(states, *self.linear[model.outputs[k]])  # (B, 2h)
            stream = stream + out if model.settings.residual else out
            if model.settings.skip:
                skipped = F.linear(out, *self.linear[model.skips[k]])  # (B, 2h)
                skip_sum = skipped if skip_sum is None else skip_sum + skipped
        return model.head.at(skip_sum if model.settings.skip else stream)  # (B, K, C)

    def end_row(self, x, i):
        for k, layer in enumerate(self.layers):
            layer.end_row(i, self.bias(k, i, slice(None)))
