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
import torch.nn.functional as F
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
        """The fast path: one matrix product per row, rows kept channels-last, gradients without per-row copies."""
        b, _, height, width = x.shape
        hid, k = self.hidden, self.state_to_state.kernel_size[0]
        # The LSTM cell runs in the parameters' dtype even under bf16 autocast: the matrix products may be bf16,
        # the cell state that accumulates over rows is not.
        dtype = self.state_to_state.weight.dtype
        rows = self.input_to_state(x).permute(2, 0, 3, 1).reshape(height, b * width, 4 * hid).unbind(0)  # H x (BW, 4h)
        # conv1d weight (4h, h, k) as a matrix acting on each pixel's k neighbours [h(j-k//2) .. h(j+k//2)].
        weight = self.state_to_state.weight.permute(1, 2, 0).reshape(hid * k, 4 * hid)  # (h*k, 4h)
        h = x.new_zeros(b, width, hid, dtype=dtype)  # (B, W, h)
        c = x.new_zeros(b * width, hid, dtype=dtype)
        states = []
        for gates_in in rows:
            neighbours = F.pad(h, (0, 0, k // 2, k // 2)).unfold(1, k, 1).reshape(b * width, hid * k)  # (BW, h*k)
            gates = torch.addmm(gates_in, neighbours, weight)  # (BW, 4h)
            h, c = lstm_update(gates.to(dtype), c, dim=1)
            h = h.view(b, width, hid)
            states.append(h)
        return torch.stack(states, 1).permute(0, 3, 1, 2)  # (B, h, H, W)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Equation 3 written plainly with convolutions; the fast path is tested equal to it."""
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        h = x.new_zeros(b, self.hidden, width)  # (B, h, W)
        c = x.new_zeros(b, self.hidden, width)
        states = []
        for i in range(height):
            gates = gates_in[:, :, i] + self.state_to_state(h)  # (B, 4h, W)
            h, c = lstm_update(gates, c, dim=1)
            states.append(h)
        return torch.stack(states, 2)  # (B, h, H, W)


class RowLSTM(RecurrentPixelModel):
    name = "row_lstm"
    Config = RowLSTMConfig

    def make_layer(self) -> nn.Module:
        cfg = self.cfg
        return RowLSTMLayer(cfg.hidden, cfg.kernel, cfg.image_shape[0], cfg.grouping)
