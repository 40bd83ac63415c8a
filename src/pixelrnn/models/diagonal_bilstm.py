"""Diagonal BiLSTM: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 3.2.

The layer scans the image along diagonals. The input map is skewed, row r shifted right by r, so that every column
of the skewed H x (W + H - 1) map is one diagonal of the image::

      image            skewed
      a b c            a b c . .
      d e f    ->      . d e f .
      g h i            . . g h i

In the skewed map the state at (r, t) follows from the previous column's states at (r - 1, t - 1) and (r, t - 1),
which in the image are the pixel above and the pixel to the left: a column-wise 2 x 1 state-to-state convolution
(unmasked, it only sees earlier pixels). The input-to-state convolution is 1 x 1 with mask B. The scan runs over the
W + H - 1 columns; the states are then un-skewed back to H x W. Skew and un-skew are a pad and a reshape.

Two directions: the second runs on the image mirrored left to right, and its states are mirrored back. Its map is
then shifted down by one row before it is added to the first's, so that a pixel never sees the pixels to its right
in its own row. Together the two directions see the whole context above and to the left: no blind spot. Both
directions run in the same batched step (a grouped convolution). Initial states are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import MaskedConv2d
from .recurrent import RecurrentConfig, RecurrentPixelModel, lstm_update


def skew(x: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) -> (B, F, H, W + H - 1): row r shifted right by r, zeros elsewhere."""
    b, f, h, w = x.shape
    flat = F.pad(x, (0, h)).reshape(b, f, h * (w + h))  # each row padded to W + H
    return flat[:, :, : h * (w + h - 1)].reshape(b, f, h, w + h - 1)


def unskew(x: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W + H - 1) -> (B, F, H, W): the inverse of :func:`skew`."""
    b, f, h, skewed_width = x.shape
    w = skewed_width - h + 1
    flat = F.pad(x.reshape(b, f, h * skewed_width), (0, h)).reshape(b, f, h, w + h)
    return flat[:, :, :, :w]


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) -> the same map moved down one row, with zeros in the first row."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


@dataclass(frozen=True)
class DiagonalBiLSTMConfig(RecurrentConfig):
    pass


class DiagonalBiLSTMLayer(nn.Module):
    """One Diagonal BiLSTM layer: 2h input maps (B, 2h, H, W) -> h states (B, h, H, W), both directions summed."""

    def __init__(self, hidden: int, groups: int, grouping: str):
        super().__init__()
        self.hidden = hidden
        # Both directions' gates at once: 2 directions x 4 gates, each gate block with the same colour groups.
        self.input_to_state = MaskedConv2d(2 * hidden, 8 * hidden, 1, "B", groups, out_chunks=8, grouping=grouping)
        # Column-wise 2 x 1 kernel over [state above, state left]; groups=2 keeps the directions apart. No bias:
        # the input-to-state conv has one, and the zero states left of the image must stay zero.
        self.state_to_state = nn.Conv1d(2 * hidden, 8 * hidden, 2, groups=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        hid = self.hidden
        gates_in = self.input_to_state(x)  # (B, 8h, H, W): [left-to-right 4h | right-to-left 4h]
        forward_gates, backward_gates = gates_in.split(4 * hid, dim=1)
        gates_in = skew(torch.cat([forward_gates, backward_gates.flip(3)], dim=1))  # (B, 8h, H, W+H-1)
        columns = gates_in.shape[3]
        states = x.new_empty(b, 2 * hid, height, columns)  # (B, 2h, H, W+H-1), filled column by column
        h = x.new_zeros(b, 2 * hid, height)  # (B, 2h, H): previous column's states, both directions
        c = x.new_zeros(b, 2, hid, height)
        for t in range(columns):
            # [state above, state left] = the previous column at rows r-1 and r: pad one zero row on top.
            recurrent = self.state_to_state(F.pad(h, (1, 0)))  # (B, 8h, H)
            gates = (gates_in[:, :, :, t] + recurrent).view(b, 2, 4 * hid, height)
            h4, c = lstm_update(gates, c, dim=2)  # (B, 2, h, H)
            h = h4.reshape(b, 2 * hid, height)
            states[:, :, :, t] = h
        states = unskew(states)  # (B, 2h, H, W)
        forward_states, backward_states = states.split(hid, dim=1)
        return forward_states + shift_down(backward_states.flip(3))  # (B, h, H, W)


class DiagonalBiLSTM(RecurrentPixelModel):
    name = "diagonal_bilstm"
    Config = DiagonalBiLSTMConfig

    def make_layer(self) -> nn.Module:
        return DiagonalBiLSTMLayer(self.cfg.hidden, self.cfg.image_shape[0], self.cfg.grouping)
