"""Pieces shared by the model families of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016).

The output head (section 3.5 and table 4 of the paper): ReLU, a 1 x 1 mask-B convolution to ``head`` maps, ReLU, and
a 1 x 1 mask-B convolution to C*K logits, reshaped to one K-way softmax per colour value.
"""

from __future__ import annotations

import torch
from torch import nn

from ..masks import MaskedConv2d


class OutputHead(nn.Module):
    """ReLU -> 1x1 mask B -> ReLU -> 1x1 mask B, giving logits [B, K, C, H, W]."""

    def __init__(self, in_features: int, head: int, channels: int, levels: int, grouping: str):
        super().__init__()
        self.channels, self.levels, self.grouping = channels, levels, grouping
        self.hidden = MaskedConv2d(in_features, head, 1, "B", channels, grouping=grouping)
        self.logits = MaskedConv2d(head, channels * levels, 1, "B", channels, grouping=grouping)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.logits(torch.relu(self.hidden(torch.relu(h))))  # (B, C*K, H, W)
        b, _, height, width = out.shape
        c, k = self.channels, self.levels
        # The logit features carry the same channel groups as every other layer: with contiguous groups feature
        # f belongs to colour f // K, with interleaved groups to colour f % C. Unfold accordingly.
        if self.grouping == "contiguous":
            return out.view(b, c, k, height, width).transpose(1, 2)  # (B, K, C, H, W)
        return out.view(b, k, c, height, width)  # (B, K, C, H, W)
