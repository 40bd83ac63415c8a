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


class RowScan(torch.autograd.Function):
    """Equation 3 row by row, with a hand-written backward (backpropagation through the rows).

    Input: the input-to-state pre-activations ``gates_in`` (H, B, W, 4h) and the state-to-state matrix ``weight``
    (h*k, 4h) acting on the k neighbours of a pixel in the row above. Output: the states (H, B, W, h). States live
    in a buffer with a zero row on top (the initial state) and k // 2 zero columns on each side (the convolution's
    padding), so each row's neighbourhoods are one unfold of the row above. The matrix products run in the dtype
    of ``gates_in`` (bfloat16 under autocast); the LSTM cell and its gradients in the dtype of ``weight``.
    """

    @staticmethod
    def forward(ctx, gates_in: torch.Tensor, weight: torch.Tensor, kernel: int) -> torch.Tensor:
        height, b, width, four_h = gates_in.shape
        hid, pad, dtype = four_h // 4, kernel // 2, weight.dtype
        with torch.autocast(gates_in.device.type, enabled=False):
            weight_mm = weight.to(gates_in.dtype)
            hs = gates_in.new_zeros(height + 1, b, width + 2 * pad, hid, dtype=dtype)
            cs = gates_in.new_zeros(height + 1, b * width, hid, dtype=dtype)
            acts = gates_in.new_empty(height, b * width, four_h, dtype=dtype)  # o, f, i, g after activation
            for r in range(height):
                neighbours = hs[r].unfold(1, kernel, 1).reshape(b * width, hid * kernel)  # (BW, h*k)
                gates = torch.addmm(gates_in[r].view(b * width, four_h), neighbours.to(weight_mm.dtype),
                                    weight_mm).to(dtype)
                act = torch.cat([torch.sigmoid(gates[:, :3 * hid]), torch.tanh(gates[:, 3 * hid:])], dim=1)
                o, f, i, g = act.chunk(4, dim=1)
                cs[r + 1] = torch.addcmul(f * cs[r], i, g)
                hs[r + 1, :, pad:pad + width] = (o * torch.tanh(cs[r + 1])).view(b, width, hid)
                acts[r] = act
        ctx.save_for_backward(hs, cs, acts, weight)
        ctx.shape = (kernel, gates_in.dtype)
        return hs[1:, :, pad:pad + width].contiguous()

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor):
        hs, cs, acts, weight = ctx.saved_tensors
        kernel, mm_dtype = ctx.shape
        height, b, width, hid = grad_states.shape
        pad, dtype = kernel // 2, weight.dtype
        with torch.autocast(grad_states.device.type, enabled=False):
            weight_t = weight.t().to(mm_dtype)
            grad_h = torch.zeros_like(hs)  # dL/dh per row: from the output and from the row below
            grad_h[1:, :, pad:pad + width] = grad_states
            grad_c = torch.zeros_like(cs[0])
            grad_gates = hs.new_empty(height, b, width, 4 * hid, dtype=mm_dtype)
            grad_weight = torch.zeros_like(weight)
            for r in reversed(range(height)):
                o, f, i, g = acts[r].chunk(4, dim=1)
                tanh_c = torch.tanh(cs[r + 1])
                dh = grad_h[r + 1, :, pad:pad + width].reshape(b * width, hid)
                dc = grad_c + dh * o * (1 - tanh_c * tanh_c)
                d_gates = torch.cat([dh * tanh_c * o * (1 - o), dc * cs[r] * f * (1 - f), dc * g * i * (1 - i),
                                     dc * i * (1 - g * g)], dim=1).to(mm_dtype)  # (BW, 4h), pre-activation
                grad_c = dc * f
                grad_gates[r] = d_gates.view(b, width, 4 * hid)
                neighbours = hs[r].unfold(1, kernel, 1).reshape(b * width, hid * kernel).to(mm_dtype)
                grad_weight += (neighbours.t() @ d_gates).to(dtype)
                d_neighbours = (d_gates @ weight_t).to(dtype).view(b, width, hid, kernel)
                for tap in range(kernel):  # the adjoint of unfold: each tap back onto its column
                    grad_h[r, :, tap:tap + width] += d_neighbours[..., tap]
        return grad_gates, grad_weight, None


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

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The fast path: the input-to-state convolution for the whole map, then :class:`RowScan`."""
        hid, k = self.hidden, self.state_to_state.kernel_size[0]
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        if bias is not None:  # conditioning (class or context), broadcast over the map
            gates_in = gates_in + bias
        gates_in = gates_in.permute(2, 0, 3, 1)  # (H, B, W, 4h)
        # conv1d weight (4h, h, k) as a matrix acting on each pixel's k neighbours [h(j-k//2) .. h(j+k//2)].
        weight = self.state_to_state.weight.permute(1, 2, 0).reshape(hid * k, 4 * hid)  # (h*k, 4h)
        return RowScan.apply(gates_in.contiguous(), weight, k).permute(1, 3, 0, 2)  # (B, h, H, W)

    def forward_reference(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Equation 3 written plainly with convolutions; the fast path is tested equal to it."""
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        if bias is not None:
            gates_in = gates_in + bias
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
