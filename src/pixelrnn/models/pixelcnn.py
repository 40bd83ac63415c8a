"""PixelCNN: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), sections 3.4-3.5 and figure 5.

A 7 x 7 convolution with mask A reads the image; then ``layers`` residual blocks, each
2h -> ReLU -> 1x1 (mask B) -> h -> ReLU -> 3x3 (mask B) -> h -> ReLU -> 1x1 (mask B) -> 2h, added to its input;
then the output head (two ReLU + 1 x 1 mask-B layers) gives C*K logits. The receptive field is bounded and has the
well-known blind spot to the upper right; that is a property of this model, kept as the paper has it.

No normalisation layer: batch statistics would make one image's likelihood depend on the other images of the batch,
and on their future pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..masks import MaskedConv2d
from .base import AutoregressiveModel, ModelConfig
from .layers import OutputHead


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    layers: int = 15  # residual blocks after the first layer (the paper's CIFAR-10 model)
    hidden: int = 128  # h; residual streams carry 2h maps
    head: int = 1024  # width of the output head
    first_kernel: int = 7
    kernel: int = 3


class ResidualBlock(nn.Module):
    """Figure 5 of the paper: a bottleneck of 1x1, kxk and 1x1 mask-B convolutions around a residual."""

    def __init__(self, hidden: int, kernel: int, groups: int, grouping: str):
        super().__init__()
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", groups, grouping=grouping)
        self.conv = MaskedConv2d(hidden, hidden, kernel, "B", groups, grouping=grouping)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", groups, grouping=grouping)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(torch.relu(x))  # (B, h, H, W)
        h = self.conv(torch.relu(h))  # (B, h, H, W)
        return x + self.expand(torch.relu(h))  # (B, 2h, H, W)


class PixelCNN(AutoregressiveModel):
    name = "pixelcnn"
    Config = PixelCNNConfig

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__(cfg)
        c, g = cfg.image_shape[0], cfg.grouping
        self.input = MaskedConv2d(c, 2 * cfg.hidden, cfg.first_kernel, "A", c, grouping=g)
        self.blocks = nn.ModuleList(ResidualBlock(cfg.hidden, cfg.kernel, c, g) for _ in range(cfg.layers))
        self.head = OutputHead(2 * cfg.hidden, cfg.head, c, cfg.levels, g)
        self.make_conditioning([2 * cfg.hidden] * cfg.layers)  # a conditioning bias joins each block's input

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        self.check_images(x)
        biases = self.layer_biases(y, context)
        h = self.input(self.scale(x))  # (B, 2h, H, W)
        for block, bias in zip(self.blocks, biases or [None] * len(self.blocks)):
            h = block(h if bias is None else h + bias)
        return self.head(h)  # (B, K, C, H, W)
