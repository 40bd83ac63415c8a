"""Row LSTM: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 3.1.

The image is processed one row at a time, top to bottom, every pixel of a row at once. Equation 3:

    [o, f, i, g] = sigma(K_ss (*) h_(i-1) + K_is (*) x_i)
    c_i = f . c_(i-1) + i . g,    h_i = o . tanh(c_i)

K_is is a k x 1 convolution along the row (k = 3) with mask B, computed for the whole map in one go (4h maps). K_ss
is a k x 1 convolution over the previous row's states; it needs no mask, since it only sees earlier rows, whose
values are all known. The receptive field of a pixel is a triangle above it: row i - d reaches d * (k // 2) columns
to each side (one more to the left through the masked input conv), widened by the 7 x 7 first layer; it does not
see the whole context.

Initial states (section 5.2 of the paper: learned): with ``learn_initial_state`` the row above the image holds a
learned h_0 and c_0, one vector each, broadcast along the row; the state-to-state convolution still pads the row
ends with zeros, as any convolution does. Without it both are zero. They are parameters, not functions of the image,
so causality is untouched.

The layer has three forms, side by side below: :class:`RowScan` (the fast scan, with a hand-written backward),
``RowLSTMLayer.forward_reference`` (the equation written plainly, which the scan is tested equal to) and
:class:`RowLSTMLayerStepper` (one pixel at a time, for generation). The cell itself is :mod:`.lstm_cell`. The whole
stack also has a fourth, the default of :class:`RowLSTM`: every layer at once on a wavefront over (layer, row)
(:mod:`.row_wavefront`), tested equal to the layer-by-layer stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import torch.nn.functional as F

from ..devices import num_threads, threads_for_steps
from ..masks import ColourGroups, MaskedConv2d
from ..precision import autocast_off
from .layers import ConvAt, linear_of
from .lstm_cell import GATES, lstm_backward, lstm_step, lstm_update
from .recurrent import LayerStepper, RecurrentConfig, RecurrentPixelModel
from .registry import register
from .row_wavefront import RowWavefront, windows


@dataclass(frozen=True)
class RowLSTMConfig(RecurrentConfig):
    kernel: int = 3  # k of the k x 1 input-to-state and state-to-state convolutions


class RowScan(torch.autograd.Function):
    """Equation 3 row by row, with a hand-written backward (backpropagation through the rows).

    Input: the input-to-state pre-activations ``gates_in`` (H, B, W, 4h), the state-to-state matrix ``weight``
    (k*h, 4h) acting on the k neighbours of a pixel in the row above (tap-major: tap u, feature c at row u*h + c),
    gates in the order of ``GATES``, and the initial states ``h0``, ``c0`` (h,). Output: the states (H, B, W, h).
    States live in a buffer with the initial row on top and k // 2 zero columns on each side (the convolution's
    padding), so each pixel's neighbourhood is a contiguous run of the row above (:func:`.row_wavefront.windows`).
    The matrix products run in the dtype of ``gates_in`` (bfloat16 under autocast), and the buffer is kept in it; the
    LSTM cell, the output states and the gradients of the recurrence in the dtype of ``weight``. The backward pass
    walks the rows in reverse and takes the weight's gradient in one product over all rows after the walk. The walks
    run on the threads that fit one row's product (``devices.threads_for_steps``), the large products on the caller's.
    """

    @staticmethod
    def forward(ctx, gates_in: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                kernel: int) -> torch.Tensor:
        height, b, width, four_h = gates_in.shape
        hid, pad, dtype, mm_dtype = four_h // len(GATES), kernel // 2, weight.dtype, gates_in.dtype
        with autocast_off(gates_in.device):
            weight_mm = weight.to(mm_dtype)
            # The states as the products read them, in their dtype: each h is cast once, not once per tap.
            hs = gates_in.new_zeros(height + 1, b, width + 2 * pad, hid)
            cs = gates_in.new_empty(height + 1, b * width, hid, dtype=dtype)
            acts = gates_in.new_empty(height, b * width, four_h, dtype=dtype)  # o, f, i, g after activation
            states = gates_in.new_empty(height, b, width, hid, dtype=dtype)  # the output, in the cell's dtype
            hs[0, :, pad:pad + width] = h0  # the initial row, broadcast along it (not into the padding)
            cs[0] = c0
            with num_threads(threads_for_steps(2 * b * width * kernel * hid * four_h)):
                for r in range(height):
                    neighbours = windows(hs[r], kernel).reshape(b * width, kernel * hid)  # (BW, k*h)
                    gates = torch.addmm(gates_in[r].view(b * width, four_h), neighbours, weight_mm).to(dtype)
                    h, cs[r + 1], _ = lstm_step(gates, cs[r], dim=1, acts=acts[r])  # (BW, h), (BW, h), (BW, 4h)
                    states[r] = h.view(b, width, hid)
                    hs[r + 1, :, pad:pad + width] = states[r]
        ctx.save_for_backward(hs, cs, acts, weight)
        ctx.kernel = kernel
        return states

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor):
        hs, cs, acts, weight = ctx.saved_tensors
        kernel, mm_dtype = ctx.kernel, hs.dtype
        height, b, width, hid = grad_states.shape
        pad, dtype = kernel // 2, weight.dtype
        with autocast_off(grad_states.device):
            weight_t = weight.t().to(mm_dtype)
            grad_h = grad_states.new_zeros(hs.shape, dtype=dtype)  # dL/dh per row: from the output, the row below
            grad_h[1:, :, pad:pad + width] = grad_states
            grad_c = torch.zeros_like(cs[0])
            grad_gates = hs.new_empty(height, b, width, len(GATES) * hid)  # (H, B, W, 4h), pre-activation
            with num_threads(threads_for_steps(2 * b * width * kernel * hid * 4 * hid)):
                for r in reversed(range(height)):
                    dh = grad_h[r + 1, :, pad:pad + width].reshape(b * width, hid)
                    d_gates = grad_gates[r].view(b * width, 4 * hid)  # (BW, 4h), written by lstm_backward
                    _, grad_c = lstm_backward(acts[r], cs[r], cs[r + 1], dh, grad_c, dim=1, out=d_gates)
                    d_neighbours = (d_gates @ weight_t).to(dtype).view(b, width, kernel, hid)
                    for tap in range(kernel):  # the adjoint of the windows: each tap back onto its column
                        grad_h[r, :, tap:tap + width] += d_neighbours[:, :, tap]
            # The weight's gradient over every row at once: one large product instead of one per row.
            neighbours = windows(hs[:-1], kernel).reshape(height * b * width, kernel * hid)  # (HBW, k*h)
            grad_weight = (neighbours.t() @ grad_gates.view(height * b * width, 4 * hid)).to(dtype)
            # The initial row feeds every pixel of the first row: its gradient is the sum over them.
            grad_h0 = grad_h[0, :, pad:pad + width].sum((0, 1))
            grad_c0 = grad_c.sum(0)
        return grad_gates, grad_weight, grad_h0, grad_c0, None


class RowLSTMLayer(nn.Module):
    """One Row LSTM layer: 2h input maps (B, 2h, H, W) -> h states (B, h, H, W)."""

    def __init__(self, hidden: int, kernel: int, colours: ColourGroups, learn_initial_state: bool = True):
        super().__init__()
        self.hidden = hidden
        # The gates of one hidden unit (its o, f, i, g) share a colour group: one chunk per gate.
        self.input_to_state = MaskedConv2d(2 * hidden, 4 * hidden, (1, kernel), "B", colours, out_chunks=len(GATES))
        # No bias here: the input-to-state conv has one, and a second would only duplicate it.
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)
        if learn_initial_state:  # zero at first: training starts from the zero-state model
            self.initial_hidden = nn.Parameter(torch.zeros(hidden))  # h_0, broadcast along the row above the image
            self.initial_cell = nn.Parameter(torch.zeros(hidden))  # c_0

    def initial_state(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0), each (h,): the learned initial states, or zeros."""
        if hasattr(self, "initial_hidden"):
            return self.initial_hidden, self.initial_cell
        zeros = like.new_zeros(self.hidden)
        return zeros, zeros

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The fast path: the input-to-state convolution for the whole map, then :class:`RowScan`."""
        hid, k = self.hidden, self.state_to_state.kernel_size[0]
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        if bias is not None:  # conditioning (class or context), broadcast over the map
            gates_in = gates_in + bias
        gates_in = gates_in.permute(2, 0, 3, 1)  # (H, B, W, 4h)
        # conv1d weight (4h, h, k) as a matrix acting on each pixel's k neighbours [h(j-k//2) .. h(j+k//2)].
        weight = self.state_to_state.weight.permute(2, 1, 0).reshape(k * hid, 4 * hid)  # (k*h, 4h)
        h0, c0 = self.initial_state(weight)
        return RowScan.apply(gates_in.contiguous(), weight, h0, c0, k).permute(1, 3, 0, 2)  # (B, h, H, W)

    def forward_reference(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Equation 3 written plainly with convolutions; the fast path is tested equal to it."""
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        if bias is not None:
            gates_in = gates_in + bias
        h0, c0 = self.initial_state(x)
        h = h0[None, :, None].expand(b, self.hidden, width)  # (B, h, W): the row above the image
        c = c0[None, :, None].expand(b, self.hidden, width)
        states = []
        for i in range(height):
            gates = gates_in[:, :, i] + self.state_to_state(h)  # (B, 4h, W)
            h, c = lstm_update(gates, c, dim=1)
            states.append(h)
        return torch.stack(states, 2)  # (B, h, H, W)

    def stepper(self, batch: int, height: int, width: int, like: torch.Tensor) -> RowLSTMLayerStepper:
        return RowLSTMLayerStepper(self, batch, height, width, like)


class RowLSTMLayerStepper(LayerStepper):
    """The layer at one pixel: the input-to-state conv reads the row to its left, the state-to-state conv the k
    states above it."""

    def __init__(self, layer: RowLSTMLayer, batch: int, height: int, width: int, like: torch.Tensor):
        hid, self.kernel = layer.hidden, layer.state_to_state.kernel_size[0]
        self.batch = batch
        self.input_to_state = ConvAt(layer.input_to_state)  # 1 x k, mask B: reads (i, j - k//2 .. j) of its input
        self.stream = self.input_to_state.cache(batch, height, width, 2 * hid, like)  # the layer's input
        # States of each row with the initial row on top and k // 2 zero columns each side (the conv's padding).
        pad = self.kernel // 2
        h0, c0 = layer.initial_state(like)
        self.states = like.new_zeros(batch, height + 1, width + 2 * pad, hid)
        self.states[:, 0, pad:pad + width] = h0
        self.cells = like.new_zeros(batch, height + 1, width, hid)
        self.cells[:, 0] = c0
        # The conv1d weight (4h, h, k) as a matrix over the (k, h) patch of states above.
        self.state_to_state = layer.state_to_state.weight.permute(0, 2, 1).reshape(4 * hid, self.kernel * hid)

    def at(self, stream, i, j, bias):
        k = self.kernel
        self.input_to_state.store(self.stream, i, j, stream)
        above = self.states[:, i, j:j + k].reshape(self.batch, -1)  # h of row i - 1, columns j - k//2 .. j + k//2
        gates = self.input_to_state(self.stream, i, j) + F.linear(above, self.state_to_state)  # (B, 4h)
        if bias is not None:
            gates = gates + bias
        h, c = lstm_update(gates, self.cells[:, i, j], dim=-1)
        self.states[:, i + 1, j + k // 2] = h
        self.cells[:, i + 1, j] = c
        return h


@register
class RowLSTM(RecurrentPixelModel):
    """Section 3.1: a stack of Row LSTM layers (see :class:`RecurrentPixelModel`).

    ``wavefront`` (the default): run the whole stack on one wavefront (:class:`.row_wavefront.RowWavefront`,
    H + L - 1 batched steps) instead of layer by layer (:class:`RowScan` per layer, H steps each, the loop of
    ``RecurrentPixelModel.forward``). The same network and parameters, a speed setting only: set it on a model
    (``model.wavefront = False``) or on the class. Side by side in one run (``benchmarks/train_speed.py``, one
    thread, batch 16) the wavefront's step was 0-10% faster in fp32 and 10-25% in bf16 on an Intel Xeon with AMX.
    """

    name = "row_lstm"
    Config = RowLSTMConfig
    wavefront = True

    def make_layer(self, colours: ColourGroups) -> nn.Module:
        return RowLSTMLayer(self.settings.hidden, self.settings.kernel, colours, self.settings.learn_initial_state)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        if not self.wavefront:
            return super().forward(x, y, context)
        self.check_images(x)
        settings, layers = self.settings, self.lstm_layers
        hid, k, taps = settings.hidden, settings.kernel, settings.kernel // 2 + 1
        stream = self.input(self.to_inputs(x))  # (B, 2h, H, W)
        b, two_h, height, width = stream.shape
        # Per layer: the mask-B input-to-state kernel on its t taps (j - k//2 .. j) over the state-to-state kernel on
        # the k states above, as one matrix (2h*t + h*k, 4h), each tap-major as RowWavefront reads the taps.
        weight = torch.stack([torch.cat([
            layer.input_to_state.masked_weight()[:, :, 0, :taps].permute(2, 1, 0).reshape(taps * two_h, 4 * hid),
            layer.state_to_state.weight.permute(2, 1, 0).reshape(k * hid, 4 * hid)]) for layer in layers])
        bias = torch.stack([layer.input_to_state.bias for layer in layers])  # (L, 4h)
        biases = [c for c in self.layer_biases(y, context) if c is not None]  # each (B, 4h, H or 1, W or 1)
        cond = torch.stack(biases).permute(0, 3, 1, 4, 2).contiguous() if biases else None  # (L, H|1, B, W|1, 4h)
        h0, c0 = (torch.stack(states) for states in zip(*(layer.initial_state(weight) for layer in layers)))
        out_weight = torch.stack([linear_of(conv)[0].t() for conv in self.outputs])  # (L, h, 2h)
        out_bias = torch.stack([conv.bias for conv in self.outputs])  # (L, 2h)
        outs = RowWavefront.apply(stream.permute(0, 2, 3, 1), weight, bias, cond, h0, c0, out_weight, out_bias, k,
                                  settings.residual)  # (L, B, H, W, 2h): every layer's output
        if settings.skip:  # every layer's skip convolution in one batched product, summed over the layers
            skip_weight = torch.stack([linear_of(conv)[0].t() for conv in self.skips])  # (L, 2h, 2h)
            skip_bias = torch.stack([conv.bias for conv in self.skips])[:, None]  # (L, 1, 2h)
            features = torch.baddbmm(skip_bias, outs.view(len(layers), -1, two_h), skip_weight).sum(0)
        elif settings.residual:
            features = stream.permute(0, 2, 3, 1) + outs.sum(0)  # the stream after the last layer
        else:
            features = outs[-1]
        return self.head(features.view(b, height, width, two_h).permute(0, 3, 1, 2))  # (B, K, C, H, W)
