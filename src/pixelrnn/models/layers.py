"""Pieces shared by the model families of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016).

The output head (section 3.5 and table 4 of the paper): ReLU, a 1 x 1 mask-B convolution to ``head`` maps, ReLU, and
a 1 x 1 mask-B convolution to C*K logits, reshaped to one K-way softmax per colour value.

The step-wise forms of the masked convolutions, which every family's stepper uses to evaluate a layer at one
new pixel from a cache of its input (fast generation, :mod:`pixelrnn.generate`). Caches are channels-last,
(B, rows, columns, features), padded with zeros where a layer reads outside the image. A k x k convolution reads
only the rows above and its own row (the mask zeroes every tap that is not computed yet, exactly as in the full pass).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import ColourGroups, MaskedConv2d


def linear_of(conv: MaskedConv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A 1 x 1 masked convolution as the (weight, bias) of F.linear, for one pixel's features."""
    return conv.masked_weight()[:, :, 0, 0], conv.bias


class OutputHead(nn.Module):
    """ReLU -> 1x1 mask B -> ReLU -> 1x1 mask B, giving logits [B, K, C, H, W]."""

    def __init__(self, in_features: int, head: int, levels: int, colours: ColourGroups):
        super().__init__()
        self.levels, self.colours = levels, colours
        self.hidden = MaskedConv2d(in_features, head, 1, "B", colours)
        self.logits = MaskedConv2d(head, colours.count * levels, 1, "B", colours)

    def unfold(self, out: torch.Tensor) -> torch.Tensor:
        """(B, C*K, *where) -> (B, K, C, *where): one K-way softmax per colour value."""
        b, rest = out.shape[0], out.shape[2:]
        c, k = self.colours.count, self.levels
        # The logit features carry the same colour groups as every other layer: with contiguous groups feature
        # f belongs to colour f // K, with interleaved groups to colour f % C. Unfold accordingly.
        if self.colours.layout == "contiguous":
            return out.view(b, c, k, *rest).transpose(1, 2)
        return out.view(b, k, c, *rest)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.unfold(self.logits(torch.relu(self.hidden(torch.relu(h)))))  # (B, K, C, H, W)

    def at(self, h: torch.Tensor) -> torch.Tensor:
        """The head at one pixel: features (B, F) -> logits (B, K, C)."""
        hidden = F.linear(torch.relu(h), *linear_of(self.hidden))  # (B, head)
        return self.unfold(F.linear(torch.relu(hidden), *linear_of(self.logits)))  # (B, K, C)


class ConvAt:
    """A masked convolution evaluated at one pixel, from a zero-padded channels-last cache of its input."""

    def __init__(self, conv: MaskedConv2d):
        kh, kw = conv.kernel_size
        self.rows, self.cols = kh // 2 + 1, kw  # rows below the centre are masked out: never read them
        weight = conv.masked_weight()[:, :, : self.rows]  # (out, in, rows, kw)
        self.weight = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)  # matches a (rows, kw, in) patch
        self.bias = conv.bias
        self.pad_top, self.pad_side = kh // 2, kw // 2

    def cache(self, batch: int, height: int, width: int, features: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, height + self.pad_top, width + 2 * self.pad_side, features)

    def __call__(self, cache: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """(B, out): the convolution's output at pixel (i, j)."""
        patch = cache[:, i:i + self.rows, j:j + self.cols]  # rows i - kh//2 .. i, columns j - kw//2 .. j + kw//2
        return F.linear(patch.reshape(patch.shape[0], -1), self.weight, self.bias)

    def store(self, cache: torch.Tensor, i: int, j: int, value: torch.Tensor) -> None:
        cache[:, i + self.pad_top, j + self.pad_side] = value

    def on_image(self, x: torch.Tensor, i: int, j: int, to_inputs) -> torch.Tensor:
        """(B, out) at pixel (i, j), reading the image x [B, C, H, W] itself (mapped by ``to_inputs``), not a cache.

        The image changes under generation (a value is drawn after its logits are computed), so the first layer
        reads the live image, zero-padded like the full convolution.
        """
        width = x.shape[-1]
        top, left = i - self.pad_top, j - self.pad_side
        window = to_inputs(x[:, :, max(0, top):i + 1, max(0, left):j + self.pad_side + 1])
        window = F.pad(window, (max(0, -left), max(0, j + self.pad_side + 1 - width), max(0, -top), 0))
        return F.linear(window.permute(0, 2, 3, 1).reshape(window.shape[0], -1), self.weight, self.bias)
