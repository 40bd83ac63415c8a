"""PixelCNN: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), sections 3.4-3.5 and figure 5.

A 7 x 7 convolution with mask A reads the image; then ``layers`` residual blocks, each
2h -> ReLU -> 1x1 (mask B) -> h -> ReLU -> 3x3 (mask B) -> h -> ReLU -> 1x1 (mask B) -> 2h, added to its input;
then the output head (two ReLU + 1 x 1 mask-B layers) gives C*K logits.

Section 4 of the paper: "Residual and layer-to-output connections are used across the layers of all three
networks", the PixelCNN included. So by default each block's 2h output also reaches the head through its own
learned 1 x 1 mask-B convolution, and the head reads the sum of these skips, exactly as in the LSTM models.
``skip=False`` gives a head that reads the last block (what checkpoints
written before the option existed hold); ``residual=False`` drops the additions to the blocks' inputs. The receptive field is bounded and has the
well-known blind spot to the upper right; that is a property of this model, kept as the paper has it.

No normalisation layer: batch statistics would make one image's likelihood depend on the other images of the batch,
and on their future pixels.

:class:`PixelCNNStepper` evaluates the same network at one new pixel for fast generation: only the k x k convolution
of each block reads a neighbourhood, from a cache of its input; the 1 x 1 convolutions need the new pixel alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

import torch.nn.functional as F

from ..masks import ColourGroups, MaskedConv2d
from .base import AutoregressiveModel, ModelConfig, Stepper
from .layers import ConvAt, OutputHead, linear_of
from .registry import register


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    layers: int = 15  # residual blocks after the first layer (the paper's CIFAR-10 model)
    hidden: int = 128  # h; residual streams carry 2h maps
    head: int = 1024  # width of the output head
    first_kernel: int = 7
    kernel: int = 3
    residual: bool = True  # each block's output is added to its input (figure 5)
    skip: bool = True  # layer-to-output connections: section 4 uses them "across the layers of all three networks"

    BEFORE: ClassVar[dict[str, Any]] = {"skip": False, "residual": True}


class ResidualBlock(nn.Module):
    """Figure 5 of the paper: a bottleneck of 1x1, kxk and 1x1 mask-B convolutions; ``PixelCNN.forward`` adds its
    output to its input."""

    def __init__(self, hidden: int, kernel: int, colours: ColourGroups):
        super().__init__()
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", colours)
        self.conv = MaskedConv2d(hidden, hidden, kernel, "B", colours)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", colours)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.reduce(torch.relu(x))  # (B, h, H, W)
        h = self.conv(torch.relu(h))  # (B, h, H, W)
        return self.expand(torch.relu(h))  # (B, 2h, H, W)


@register
class PixelCNN(AutoregressiveModel):
    """Section 3.4: masked convolutions only; bounded receptive field, fast to train."""

    name = "pixelcnn"
    Config = PixelCNNConfig

    def __init__(self, settings: PixelCNNConfig):
        super().__init__(settings)
        colours = settings.colours
        self.input = MaskedConv2d(colours.count, 2 * settings.hidden, settings.first_kernel, "A", colours)
        self.blocks = nn.ModuleList(ResidualBlock(settings.hidden, settings.kernel, colours) for _ in range(settings.layers))
        if settings.skip:
            self.skips = nn.ModuleList(MaskedConv2d(2 * settings.hidden, 2 * settings.hidden, 1, "B", colours)
                                       for _ in range(settings.layers))
        self.head = OutputHead(2 * settings.hidden, settings.head, settings.levels, colours)
        self.make_conditioning([2 * settings.hidden] * settings.layers)  # a conditioning bias joins each block's input

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        self.check_images(x)
        biases = self.layer_biases(y, context) or [None] * self.settings.layers
        stream = self.input(self.to_inputs(x))  # (B, 2h, H, W)
        skip_sum = None
        for k, block in enumerate(self.blocks):
            if biases[k] is not None:
                stream = stream + biases[k]  # the conditioning bias joins the block's input
            out = block(stream)  # (B, 2h, H, W)
            stream = stream + out if self.settings.residual else out
            if self.settings.skip:
                skipped = self.skips[k](out)  # (B, 2h, H, W)
                skip_sum = skipped if skip_sum is None else skip_sum + skipped
        return self.head(skip_sum if self.settings.skip else stream)  # (B, K, C, H, W)

    def stepper(self, batch: int, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> PixelCNNStepper:
        return PixelCNNStepper(self, batch, y=y, context=context)


class BlockAt(NamedTuple):
    """A residual block at one pixel: its 1 x 1 convolutions as linear maps, its k x k one over a cache."""

    reduce: tuple[torch.Tensor, torch.Tensor | None]
    conv: ConvAt
    cache: torch.Tensor  # (B, H + k//2, W + 2 (k//2), h): the block's h maps before the k x k convolution
    expand: tuple[torch.Tensor, torch.Tensor | None]


class PixelCNNStepper(Stepper):
    """:class:`PixelCNN` at one pixel at a time, each block's k x k convolution reading a cache of its input."""

    def __init__(self, model: PixelCNN, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        self.input = ConvAt(model.input)
        self.blocks = []
        for block in model.blocks:
            conv = ConvAt(block.conv)
            cache = conv.cache(batch, self.height, self.width, block.conv.in_channels, self.like)
            self.blocks.append(BlockAt(linear_of(block.reduce), conv, cache, linear_of(block.expand)))
        self.skips = [linear_of(conv) for conv in model.skips] if model.settings.skip else None

    def block_at(self, n: int, h: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Block n's output (B, 2h) at pixel (i, j) from its input ``h`` there, caching what its k x k conv reads."""
        block = self.blocks[n]
        block.conv.store(block.cache, i, j, torch.relu(F.linear(torch.relu(h), *block.reduce)))  # (B, h)
        return F.linear(torch.relu(block.conv(block.cache, i, j)), *block.expand)  # (B, 2h)

    def logits(self, x, i, j):
        """The loop of ``PixelCNN.forward`` at one pixel."""
        stream = self.input.on_image(x, i, j, self.model.to_inputs)  # (B, 2h)
        skip_sum = None
        for k in range(len(self.blocks)):
            bias = self.bias(k, i, j)
            if bias is not None:
                stream = stream + bias
            out = self.block_at(k, stream, i, j)  # (B, 2h)
            stream = stream + out if self.model.settings.residual else out
            if self.skips:
                skipped = F.linear(out, *self.skips[k])  # (B, 2h)
                skip_sum = skipped if skip_sum is None else skip_sum + skipped
        return self.model.head.at(skip_sum if self.skips else stream)  # (B, K, C)
