"""The Row LSTM's whole stack of layers on one wavefront: "Pixel Recurrent Neural Networks" (van den Oord et al.,
ICML 2016), sections 3.1 and 3.3.

Layer l at row i needs two things: its own states of row i - 1 (equation 3), and its input at row i, which is the
stream after layer l - 1 at row i (the residual stream of section 3.3: the 1 x k input-to-state convolution reads
only its own row). So every cell (l, i) of an anti-diagonal l + i = d depends only on the anti-diagonal d - 1, and
the whole stack advances one anti-diagonal per step: H + L - 1 batched steps instead of H x L small ones::

      row    0   1   2   3            the step that computes (layer, row), L = 3, H = 4
    layer 0  0   1   2   3
    layer 1  1   2   3   4
    layer 2  2   3   4   5

A step computes, for each of its cells at once (one batched product per stage, the layers' weights side by side),
the input-to-state and state-to-state pre-activations as one product of [input row taps, state row taps] with the
layer's stacked kernels, the LSTM cell (:mod:`.lstm_cell`), the layer's 1 x 1 output convolution, and the next
layer's stream (this stream plus the output with ``residual``, else the output alone). The skip convolutions and the
head stay outside: they read every layer's output, which is what :class:`RowWavefront` returns.

Buffers are laid out (layer, row, ...), so that the cells of an anti-diagonal, where the layer rises by one as the row
falls by one, lie a fixed distance apart in memory: each is one strided view (:func:`cells`), never a gathered copy.
The backward pass walks the anti-diagonals in reverse with hand-written gradients and takes the weights' gradients
in one large product per layer after the walk. It is tested equal to the layer-by-layer model in float64.
"""

from __future__ import annotations

import torch

from ..devices import num_threads, threads_for_steps
from ..precision import autocast_off
from .lstm_cell import lstm_backward, lstm_step


def cells(buffer: torch.Tensor, first_layer: int, count: int, first_row: int, row_dim: int = 1) -> torch.Tensor:
    """The cells (first_layer + m, first_row - m), m < count, of a (layer, ..., row, ...) buffer, as one view.

    The result drops the row dimension and puts the ``count`` cells first: (count, *the other dimensions).
    """
    s = buffer.stride()
    size = (count, *buffer.shape[1:row_dim], *buffer.shape[row_dim + 1:])
    stride = (s[0] - s[row_dim], *s[1:row_dim], *s[row_dim + 1:])
    return buffer.as_strided(size, stride, buffer.storage_offset() + first_layer * s[0] + first_row * s[row_dim])


def windows(row: torch.Tensor, taps: int) -> torch.Tensor:
    """The ``taps`` neighbours of each pixel of a padded row (..., W + taps - 1, F), tap-major, as one view
    (..., W, taps * F): pixel j's neighbours are the contiguous run of features from column j on, so that copying
    them into a product's input moves whole runs, not one feature at a time as an unfold's tap-minor view does."""
    *lead, padded, features = row.shape
    if row.stride(-1) != 1 or row.stride(-2) != features:
        raise ValueError("the row's columns must be contiguous runs of features")
    return row.as_strided((*lead, padded - taps + 1, taps * features), (*row.stride()[:-2], features, 1))


def step_flops(height: int, layers: int, batch: int, width: int, taps_in: int, hid: int) -> int:
    """FLOPs of the largest product of one step (min(H, L) cells), which decides the walk's threads."""
    return 2 * min(height, layers) * batch * width * taps_in * 4 * hid


def diagonals(height: int, layers: int):
    """Per anti-diagonal: (first layer, number of cells, row of the first cell)."""
    for d in range(height + layers - 1):
        first, last = max(0, d - height + 1), min(layers - 1, d)
        yield first, last - first + 1, d - first


class RowWavefront(torch.autograd.Function):
    """Every Row LSTM layer of a stack with its output convolution and residual stream, on one wavefront.

    Inputs (L layers, hidden size h, kernel k, t = k // 2 + 1 taps of the mask-B input-to-state convolution):

    - ``stream`` (B, H, W, 2h): the first layer's input, channels last;
    - ``weight`` (L, 2h*t + h*k, 4h): per layer, the input-to-state kernel acting on the t input taps
      (j - k//2 .. j) stacked over the state-to-state kernel acting on the k states above (j - k//2 .. j + k//2),
      each tap-major (tap u, feature c at row u*2h + c, resp. u*h + c), gates in the order of ``lstm_cell.GATES``;
    - ``bias`` (L, 4h): the input-to-state convolution's bias; ``cond`` (L, H or 1, B, W or 1, 4h) or None: a
      conditioning bias added to the pre-activations;
    - ``h0``, ``c0`` (L, h): the initial states; ``out_weight`` (L, h, 2h), ``out_bias`` (L, 2h): the 1 x 1 output
      convolutions;
    - ``kernel`` (k) and ``residual``.

    Output: every layer's output (L, B, H, W, 2h), in the dtype of ``stream``. As in :class:`.row_lstm.RowScan`,
    the products and the streams run in the dtype of ``stream`` (bfloat16 under autocast) and the LSTM cell, its
    states and the gradients of the recurrence in the dtype of ``weight``.
    """

    @staticmethod
    def forward(ctx, stream, weight, bias, cond, h0, c0, out_weight, out_bias, kernel: int, residual: bool):
        b, height, width, two_h = stream.shape
        layers, hid = h0.shape
        taps, pad, dtype, mm = kernel // 2 + 1, kernel // 2, weight.dtype, stream.dtype
        k_in = two_h * taps  # the input taps' part of each product's input; the state taps follow
        with autocast_off(stream.device):
            w, w_out = weight.to(mm), out_weight.to(mm)
            bias_mm, out_bias_mm = bias.to(mm)[:, None], out_bias.to(mm)[:, None]  # (L, 1, 4h), (L, 1, 2h)
            # Each layer's input stream with the t - 1 zero columns left of the row that its taps read, and the
            # states with the initial row on top and k // 2 zero columns each side (the convolution's padding).
            # Only the padding is zeroed: every other cell is written before it is read.
            streams = stream.new_empty(layers, height, b, width + taps - 1, two_h)
            streams[..., :taps - 1, :] = 0
            streams[0, :, :, taps - 1:] = stream.transpose(0, 1)
            hs = stream.new_empty(layers, height + 1, b, width + 2 * pad, hid)
            hs[..., :pad, :], hs[..., pad + width:, :] = 0, 0
            hs[:, 0, :, pad:pad + width] = h0.to(mm)[:, None, None]
            cs = stream.new_empty(layers, height + 1, b, width, hid, dtype=dtype)
            cs[:, 0] = c0[:, None, None]
            acts = stream.new_empty(layers, height, b, width, 4 * hid, dtype=dtype)  # o, f, i, g after activation
            outs = stream.new_empty(layers, b, height, width, two_h)
            with num_threads(threads_for_steps(step_flops(height, layers, b, width, w.shape[1], hid))):
                for first, n, row in diagonals(height, layers):
                    last, feeding = first + n, n if first + n < layers else n - 1  # the last layer feeds no layer
                    taps_of = stream.new_empty(n, b, width, w.shape[1])  # [input taps, state taps] per pixel
                    taps_of[..., :k_in] = windows(cells(streams, first, n, row), taps)
                    taps_of[..., k_in:] = windows(cells(hs, first, n, row), kernel)
                    gates = torch.baddbmm(bias_mm[first:last], taps_of.view(n, b * width, -1), w[first:last])
                    gates = gates.to(dtype).view(n, b, width, 4 * hid)  # (n, B, W, 4h)
                    if cond is not None:
                        gates += cells(cond, first, n, row) if cond.shape[1] > 1 else cond[first:last, 0]
                    h, c, _ = lstm_step(gates, cells(cs, first, n, row), dim=3, acts=cells(acts, first, n, row))
                    cells(cs, first, n, row + 1).copy_(c)
                    h = h.to(mm)
                    cells(hs, first, n, row + 1)[:, :, pad:pad + width] = h
                    out = torch.baddbmm(out_bias_mm[first:last], h.reshape(n, b * width, hid), w_out[first:last])
                    out = out.view(n, b, width, two_h)  # (n, B, W, 2h)
                    cells(outs, first, n, row, row_dim=2).copy_(out)
                    if feeding:
                        below = cells(streams, first + 1, feeding, row)[:, :, taps - 1:]
                        if residual:
                            torch.add(cells(streams, first, feeding, row)[:, :, taps - 1:], out[:feeding], out=below)
                        else:
                            below.copy_(out[:feeding])
        ctx.save_for_backward(streams, hs, cs, acts, weight, out_weight)
        ctx.kernel, ctx.residual = kernel, residual
        ctx.cond = None if cond is None else (cond.shape, cond.dtype)
        return outs

    @staticmethod
    def backward(ctx, grad_outs):
        streams, hs, cs, acts, weight, out_weight = ctx.saved_tensors
        kernel, residual = ctx.kernel, ctx.residual
        layers, height, b, padded, two_h = streams.shape
        hid, taps, pad = hs.shape[-1], kernel // 2 + 1, kernel // 2
        width, k_in, dtype, mm = padded - taps + 1, two_h * (kernel // 2 + 1), weight.dtype, streams.dtype
        with autocast_off(grad_outs.device):
            w_t, w_out_t = weight.to(mm).transpose(1, 2), out_weight.to(mm).transpose(1, 2)  # (L, 4h, K), (L, 2h, h)
            grad_outs = grad_outs.contiguous()
            grad_streams = torch.zeros_like(streams, dtype=dtype)  # dL/d each layer's input stream
            grad_h = torch.zeros_like(hs, dtype=dtype)  # dL/dh of each row, from the row below it
            grad_c = torch.empty_like(cs)  # dL/dc of each row, from the row below it (each written once)
            grad_c[:, height] = 0  # below the last row
            grad_gates = streams.new_empty(layers, height, b, width, 4 * hid)  # pre-activations, products' dtype
            grad_out_all = streams.new_empty(layers, height, b, width, two_h)  # dL/d each output, products' dtype
            with num_threads(threads_for_steps(step_flops(height, layers, b, width, weight.shape[1], hid))):
                for first, n, row in reversed(list(diagonals(height, layers))):
                    last, feeding = first + n, n if first + n < layers else n - 1
                    # An output reaches the head (grad_outs) and, as part of the next layer's stream, the layers
                    # above it.
                    grad_out = torch.empty(n, b, width, two_h, dtype=dtype, device=grad_outs.device)
                    grad_out.copy_(cells(grad_outs, first, n, row, row_dim=2))
                    if feeding:  # dL/d the next layers' inputs, complete: their cells came one step before
                        grad_next = cells(grad_streams, first + 1, feeding, row)[:, :, taps - 1:]
                        grad_out[:feeding] += grad_next
                    grad_out = grad_out.to(mm)
                    cells(grad_out_all, first, n, row).copy_(grad_out)
                    dh = torch.bmm(grad_out.view(n, b * width, two_h), w_out_t[first:last]).to(dtype)
                    dh = dh.view(n, b, width, hid) + cells(grad_h, first, n, row + 1)[:, :, pad:pad + width]
                    d_gates = cells(grad_gates, first, n, row)  # (n, B, W, 4h), written by lstm_backward
                    _, grad_c_above = lstm_backward(cells(acts, first, n, row), cells(cs, first, n, row),
                                                    cells(cs, first, n, row + 1), dh, cells(grad_c, first, n, row + 1),
                                                    dim=3, out=d_gates)
                    cells(grad_c, first, n, row).copy_(grad_c_above)
                    d_taps = torch.bmm(d_gates.view(n, b * width, 4 * hid), w_t[first:last]).to(dtype)  # (n, BW, K)
                    d_in = d_taps[..., :k_in].view(n, b, width, taps, two_h)
                    d_states = d_taps[..., k_in:].view(n, b, width, kernel, hid)
                    grad_stream = cells(grad_streams, first, n, row)  # (n, B, W + t - 1, 2h)
                    for tap in range(taps):  # the adjoint of the windows: each tap back onto its column
                        grad_stream[:, :, tap:tap + width] += d_in[..., tap, :]
                    if residual and feeding:  # the stream passes on to the next layer's input unchanged
                        grad_stream[:feeding, :, taps - 1:] += grad_next
                    grad_above = cells(grad_h, first, n, row)  # (n, B, W + 2 pad, h): the row above
                    for tap in range(kernel):
                        grad_above[:, :, tap:tap + width] += d_states[..., tap, :]
            # The weights' gradients, one large product per layer over all its pixels instead of one per step.
            grad_weight, grad_out_weight = torch.empty_like(weight), torch.empty_like(out_weight)
            for layer in range(layers):
                taps_of = streams.new_empty(height, b, width, weight.shape[1])
                taps_of[..., :k_in] = windows(streams[layer], taps)
                taps_of[..., k_in:] = windows(hs[layer, :-1], kernel)
                grad_weight[layer] = taps_of.view(-1, weight.shape[1]).t() @ grad_gates[layer].view(-1, 4 * hid)
                states = hs[layer, 1:, :, pad:pad + width].reshape(-1, hid)  # (HBW, h)
                grad_out_weight[layer] = states.t() @ grad_out_all[layer].view(-1, two_h)
            grad_bias = grad_gates.sum((1, 2, 3), dtype=dtype)
            grad_out_bias = grad_out_all.sum((1, 2, 3), dtype=dtype)
            grad_cond = None
            if ctx.cond is not None:  # summed over the dimensions that the bias is broadcast along
                shape, cond_dtype = ctx.cond
                spread = [d for d in (1, 2, 3) if shape[d] == 1]
                grad_cond = (grad_gates.sum(spread, keepdim=True, dtype=cond_dtype) if spread
                             else grad_gates.to(cond_dtype))
            grad_stream0 = grad_streams[0, :, :, taps - 1:].transpose(0, 1).to(mm)  # (B, H, W, 2h)
            grad_h0 = grad_h[:, 0, :, pad:pad + width].sum((1, 2))
            grad_c0 = grad_c[:, 0].sum((1, 2))
        return (grad_stream0, grad_weight, grad_bias, grad_cond, grad_h0, grad_c0, grad_out_weight, grad_out_bias,
                None, None)
