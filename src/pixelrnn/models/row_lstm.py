"""Row LSTM: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 3.1.

The image is processed one row at a time, top to bottom, every pixel of a row at once. Equation 3:

    [o, f, i, g] = sigma(K_ss (*) h_(i-1) + K_is (*) x_i)
    c_i = f . c_(i-1) + i . g,    h_i = o . tanh(c_i)

K_is is a k x 1 convolution along the row (k = 3) with mask B, computed for the whole map in one go (4h maps). K_ss
is a k x 1 convolution over the previous row's states; it needs no mask, since it only sees earlier rows, whose
values are all known. The receptive field of a pixel is a triangle above it: row i - d reaches d * (k // 2) columns
to each side (one more to the left through the masked input conv), widened by the 7 x 7 first layer; it does not
see the whole context. Initial states are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..masks import MaskedConv2d
from .recurrent import RecurrentConfig, RecurrentPixelModel, lstm_update


@dataclass(frozen=True)
class RowLSTMConfig(RecurrentConfig):
    kernel: int = 3  # k of the k x 1 input-to-state and state-to-state convolutions


class RowLSTMLayer(nn.Module):
    """One Row LSTM layer: 2h input maps (B, 2h, H, W) -> h states (B, h, H, W)."""

    def __init__(self, hidden: int, kernel: int, groups: int, grouping: str):
        super().__init__()
        self.hidden = hidden
        # The gates of one hidden unit (its o, f, i, g) share a colour group: out_chunks=4.
        self.input_to_state = MaskedConv2d(2 * hidden, 4 * hidden, (1, kernel), "B", groups, out_chunks=4,
                                           grouping=grouping)
        # No bias here: the input-to-state conv has one, and a second would only duplicate it.
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        out = x.new_empty(b, self.hidden, height, width)  # (B, h, H, W), filled row by row
        h = x.new_zeros(b, self.hidden, width)  # (B, h, W)
        c = x.new_zeros(b, self.hidden, width)
        for i in range(height):
            gates = gates_in[:, :, i] + self.state_to_state(h)  # (B, 4h, W)
            h, c = lstm_update(gates, c, dim=1)
            out[:, :, i] = h
        return out


class RowLSTM(RecurrentPixelModel):
    name = "row_lstm"
    Config = RowLSTMConfig

    def make_layer(self) -> nn.Module:
        cfg = self.cfg
        return RowLSTMLayer(cfg.hidden, cfg.kernel, cfg.image_shape[0], cfg.grouping)
