"""What the Row LSTM and the Diagonal BiLSTM share: the LSTM update and the residual/skip stack around the layers.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), sections 3.1-3.3:

- equation 3: [o, f, i, g] = sigma(K_ss * h_(i-1) + K_is * x_i), with the logistic sigmoid for o, f, i and tanh
  for g; c_i = f . c_(i-1) + i . g; h_i = o . tanh(c_i);
- a 7 x 7 mask-A convolution reads the image into 2h maps; each LSTM layer reads the 2h maps, keeps h-dimensional
  states, and maps them back to 2h with a 1 x 1 mask-B convolution that is added to its input (residual);
- each layer's 2h output also reaches the output head through its own learned 1 x 1 convolution (skip).

Both connections can be switched off (``residual=False``, ``skip=False``) to rerun the paper's ablation. With skip
connections the head reads the sum of the skips; without, it reads the last layer's output. Initial states are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..masks import MaskedConv2d
from .base import AutoregressiveModel, ModelConfig
from .layers import OutputHead


@dataclass(frozen=True)
class RecurrentConfig(ModelConfig):
    layers: int = 12  # the paper's CIFAR-10 models
    hidden: int = 128  # h
    head: int = 1024
    residual: bool = True
    skip: bool = True
    first_kernel: int = 7


def lstm_update(gates: torch.Tensor, cell: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equation 3 of the paper, from pre-activations ``gates`` = [o, f, i, g] stacked along ``dim``.

    Returns:
        (hidden, cell), each the shape of ``cell``.
    """
    size = cell.shape[dim]
    sigmoids = torch.sigmoid(gates.narrow(dim, 0, 3 * size))  # o, f, i in one call
    o, f, i = sigmoids.chunk(3, dim)
    cell = torch.addcmul(f * cell, i, torch.tanh(gates.narrow(dim, 3 * size, size)))
    return o * torch.tanh(cell), cell


class RecurrentPixelModel(AutoregressiveModel):
    """The stack of the LSTM models: mask-A input conv, LSTM layers with residual and skip paths, output head.

    Subclasses provide ``make_layer()``, a module mapping the 2h input maps (B, 2h, H, W), and an optional bias for
    its input-to-state map, to the layer's h states (B, h, H, W).
    """

    Config = RecurrentConfig

    def __init__(self, cfg: RecurrentConfig):
        super().__init__(cfg)
        c, g, h = cfg.image_shape[0], cfg.grouping, cfg.hidden
        self.input = MaskedConv2d(c, 2 * h, cfg.first_kernel, "A", c, grouping=g)
        self.lstm_layers = nn.ModuleList(self.make_layer() for _ in range(cfg.layers))
        self.outputs = nn.ModuleList(MaskedConv2d(h, 2 * h, 1, "B", c, grouping=g) for _ in range(cfg.layers))
        if cfg.skip:
            self.skips = nn.ModuleList(MaskedConv2d(2 * h, 2 * h, 1, "B", c, grouping=g) for _ in range(cfg.layers))
        self.head = OutputHead(2 * h, cfg.head, c, cfg.levels, g)
        self.make_conditioning([layer.input_to_state.out_channels for layer in self.lstm_layers])

    def make_layer(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        self.check_images(x)
        biases = self.layer_biases(y, context) or [None] * len(self.lstm_layers)
        stream = self.input(self.scale(x))  # (B, 2h, H, W)
        skip_sum = None
        for k, layer in enumerate(self.lstm_layers):
            out = self.outputs[k](layer(stream, biases[k]))  # (B, 2h, H, W)
            stream = stream + out if self.cfg.residual else out
            if self.cfg.skip:
                skip = self.skips[k](out)
                skip_sum = skip if skip_sum is None else skip_sum + skip
        return self.head(skip_sum if self.cfg.skip else stream)  # (B, K, C, H, W)
