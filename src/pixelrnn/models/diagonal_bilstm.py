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
directions run in the same batched step (a grouped convolution).

Initial states (section 5.2 of the paper: learned): with ``learn_initial_state`` every neighbour outside the image
(the row above it, the column before it) holds a learned h_0 and c_0, one pair per direction, broadcast along that
border. In the skewed scan this is the column before the first diagonal, and the border cells of later columns kept
at the same state. The right-to-left direction runs on the mirrored image, so its initial state enters above the
image and right of its last column; after the down-shift its first row reads the row above the image, which is its
initial state h_0 (zero without learned states). That row depends on no pixel, so the shift keeps the layer causal:
row i still reads right-to-left states of rows up to i - 1 only.

The layer has three forms, side by side below: :class:`DiagonalScan` (the fast scan, with a hand-written backward),
``DiagonalBiLSTMLayer.forward_reference`` (skew, scan and un-skew written plainly, which the scan is tested equal to)
and :class:`DiagonalBiLSTMLayerStepper` (one pixel at a time, for generation). The LSTM cell of equation 3 is
:mod:`.lstm_cell`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import num_threads, threads_for_steps
from ..masks import ColourGroups, MaskedConv2d
from ..precision import autocast_off
from .layers import linear_of
from .lstm_cell import GATES, lstm_backward, lstm_step, lstm_update
from .recurrent import LayerStepper, RecurrentConfig, RecurrentPixelModel
from .registry import register


def skew(x: torch.Tensor, row_dim: int = -2) -> torch.Tensor:
    """Shift row r right by r: (..., H, W, *rest) -> (..., H, W + H - 1, *rest), zeros elsewhere.

    ``row_dim`` names the H dimension; W follows it, and any trailing dimensions (features) travel along.
    """
    row_dim %= x.dim()
    lead, (h, w), rest = x.shape[:row_dim], x.shape[row_dim:row_dim + 2], x.shape[row_dim + 2:]
    flat = F.pad(x, [0, 0] * len(rest) + [0, h]).reshape(*lead, h * (w + h), *rest)  # each row padded to W + H
    return flat.narrow(row_dim, 0, h * (w + h - 1)).reshape(*lead, h, w + h - 1, *rest)


def unskew(x: torch.Tensor, row_dim: int = -2) -> torch.Tensor:
    """The inverse of :func:`skew`: (..., H, W + H - 1, *rest) -> (..., H, W, *rest)."""
    row_dim %= x.dim()
    lead, (h, skewed_width), rest = x.shape[:row_dim], x.shape[row_dim:row_dim + 2], x.shape[row_dim + 2:]
    w = skewed_width - h + 1
    flat = x.reshape(*lead, h * skewed_width, *rest)
    flat = F.pad(flat, [0, 0] * len(rest) + [0, h]).reshape(*lead, h, w + h, *rest)
    return flat.narrow(row_dim + 1, 0, w)


def shift_down(x: torch.Tensor, top: torch.Tensor | None = None, row_dim: int = -2) -> torch.Tensor:
    """The same map moved down one row along ``row_dim``; the first row is ``top`` (broadcast), or zeros."""
    row_dim %= x.dim()
    pad = [0, 0] * (x.dim() - row_dim - 1) + [1, 0]
    shifted = F.pad(x, pad).narrow(row_dim, 0, x.shape[row_dim])
    if top is None:
        return shifted
    first = torch.zeros_like(x.narrow(row_dim, 0, 1)) + top  # (..., 1, ...): the row above the image
    return torch.cat([first, shifted.narrow(row_dim, 1, x.shape[row_dim] - 1)], dim=row_dim)


@dataclass(frozen=True)
class DiagonalBiLSTMConfig(RecurrentConfig):
    pass


class DiagonalScan(torch.autograd.Function):
    """The LSTM recurrence along the diagonals, for both directions at once, with a hand-written backward.

    Input: the input-to-state pre-activations ``gates_in`` (2, H, W, B, 4h), the second direction already mirrored,
    the state-to-state matrices ``weight`` (2, 2h, 4h) acting on [state above, state left], and the initial states
    ``h0``, ``c0`` (2, h). Output: the states (2, H, W, B, h), in the same (mirrored) coordinates.

    Column t of the skewed map is the diagonal of cells (r, t - r); cell (r, c) depends on (r - 1, c) and
    (r, c - 1), both on diagonal t - 1. States live in a buffer with one row on top and one column on the left that
    hold the initial state, so that the neighbours outside the image read it, and so that every diagonal,
    and each of its two neighbour diagonals, is a strided view of the buffer: no skewed copy is ever made, and only
    image cells are computed. The backward pass walks the diagonals in reverse (backpropagation through time) and
    writes each gradient once, instead of autograd's one full-size zero tensor per step.

    The matrix products run in the dtype of ``gates_in`` (bfloat16 under autocast), and the h buffer is kept in it;
    the LSTM cell, its c state, the output states and the gradients of the recurrence run in the dtype of ``weight``
    (the parameters'). The weight's gradient is one product over all cells after the walk. The walks run on the
    threads that fit the longest diagonal's product (``devices.threads_for_steps``), the large products on the caller's.
    """

    @staticmethod
    def _diagonals(height: int, width: int):
        """Per diagonal t: the slices of its cells in the flat (H x W) input and in the padded flat state buffer."""
        for t in range(height + width - 1):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            # Cell (r, t - r): flat input index r (W - 1) + t; padded buffer index (r + 1)(W + 1) + (t - r + 1).
            flat = slice(lo * (width - 1) + t, hi * (width - 1) + t + 1, max(1, width - 1))
            start, stop = lo * width + width + t + 2, hi * width + width + t + 3
            yield hi - lo + 1, flat, start, stop

    @staticmethod
    def forward(ctx, gates_in: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
        _, height, width, b, four_h = gates_in.shape
        hid, dtype, mm_dtype = four_h // len(GATES), weight.dtype, gates_in.dtype
        with autocast_off(gates_in.device):
            gates_flat = gates_in.reshape(2, height * width, b, four_h)
            weight_mm = weight.to(mm_dtype)
            # Padded state buffers: row 0 and column 0 hold the initial states (the rest is overwritten). The states
            # are kept as the products read them, in their dtype: each h is cast once, not once per neighbour.
            padded = (2, (height + 1) * (width + 1), b, hid)
            hs = h0.to(mm_dtype)[:, None, None].expand(padded).contiguous()
            cs = c0.to(dtype)[:, None, None].expand(padded).contiguous()
            acts = gates_in.new_empty(2, height * width, b, four_h, dtype=dtype)  # o, f, i, g after activation
            states = gates_in.new_empty(2, height * width, b, hid, dtype=dtype)  # the output, in the cell's dtype
            step = width  # in the padded buffer, consecutive cells of a diagonal are W apart
            with num_threads(threads_for_steps(2 * 2 * min(height, width) * b * 2 * hid * four_h)):
                for n, flat, start, stop in DiagonalScan._diagonals(height, width):
                    cells = slice(start, stop, step)
                    above, left = slice(start - width - 1, stop - width - 1, step), slice(start - 1, stop - 1, step)
                    neighbours = torch.cat([hs[:, above], hs[:, left]], dim=3).view(2, n * b, 2 * hid)
                    gates_here = gates_flat[:, flat].reshape(2, n * b, four_h)
                    gates = torch.baddbmm(gates_here, neighbours, weight_mm).to(dtype)
                    # The cell on (2, n, B, .) views of the buffers: no gathered copies, activations written in place.
                    h, c, _ = lstm_step(gates.view(2, n, b, four_h), cs[:, left], dim=3, acts=acts[:, flat])
                    states[:, flat] = h  # (2, n, B, h)
                    hs[:, cells] = h
                    cs[:, cells] = c
        ctx.save_for_backward(hs, cs, acts, weight)
        ctx.height, ctx.width = height, width
        return states.view(2, height, width, b, hid)

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor):
        hs, cs, acts, weight = ctx.saved_tensors
        height, width, mm_dtype = ctx.height, ctx.width, hs.dtype
        b, hid, dtype = hs.shape[2], hs.shape[3], weight.dtype
        with autocast_off(grad_states.device):
            weight_t = weight.transpose(1, 2).to(mm_dtype)
            grad_h = torch.zeros_like(cs)  # accumulates dL/dh per cell: from the output and from later diagonals
            grad_h.view(2, height + 1, width + 1, b, hid)[:, 1:, 1:] = grad_states
            grad_c = torch.zeros_like(cs)
            grad_gates = hs.new_empty(2, height * width, b, 4 * hid)  # pre-activation, in the products' dtype
            step = width
            with num_threads(threads_for_steps(2 * 2 * min(height, width) * b * 2 * hid * 4 * hid)):
                for n, flat, start, stop in reversed(list(DiagonalScan._diagonals(height, width))):
                    cells = slice(start, stop, step)
                    above, left = slice(start - width - 1, stop - width - 1, step), slice(start - 1, stop - 1, step)
                    # The cell's gradient on (2, n, B, .) views, written straight into grad_gates (the products' dtype).
                    _, grad_c_left = lstm_backward(acts[:, flat], cs[:, left], cs[:, cells], grad_h[:, cells],
                                                   grad_c[:, cells], dim=3, out=grad_gates[:, flat])
                    grad_c[:, left] += grad_c_left
                    d_gates = grad_gates[:, flat].reshape(2, n * b, 4 * hid)  # as the product reads it
                    d_neighbours = torch.bmm(d_gates, weight_t).to(dtype).view(2, n, b, 2 * hid)
                    grad_h[:, above] += d_neighbours[..., :hid]
                    grad_h[:, left] += d_neighbours[..., hid:]
            # The weight's gradient over every cell at once, one product per direction instead of one per diagonal:
            # cell (r, c) of the padded grid reads [state above, state left] = grid (r - 1, c), (r, c - 1).
            grid = hs.view(2, height + 1, width + 1, b, hid)
            neighbours = torch.cat([grid[:, :-1, 1:], grid[:, 1:, :-1]], dim=4).view(2, height * width * b, 2 * hid)
            grad_weight = torch.bmm(neighbours.transpose(1, 2), grad_gates.view(2, height * width * b, 4 * hid))
            # The border (row 0 and column 0; their corner is never read) holds the initial states.
            grid_h = grad_h.view(2, height + 1, width + 1, b, hid)
            grad_h0 = grid_h[:, 0].sum((1, 2)) + grid_h[:, 1:, 0].sum((1, 2))
            grad_c0 = grad_c.view(2, height + 1, width + 1, b, hid)[:, 1:, 0].sum((1, 2))
        return grad_gates.view(2, height, width, b, 4 * hid), grad_weight.to(dtype), grad_h0, grad_c0


class DiagonalBiLSTMLayer(nn.Module):
    """One Diagonal BiLSTM layer: 2h input maps (B, 2h, H, W) -> h states (B, h, H, W), both directions summed."""

    def __init__(self, hidden: int, colours: ColourGroups, learn_initial_state: bool = True):
        super().__init__()
        self.hidden = hidden
        # Both directions' gates at once: 2 directions x 4 gates, each gate block with the same colour groups.
        self.input_to_state = MaskedConv2d(2 * hidden, 8 * hidden, 1, "B", colours, out_chunks=2 * len(GATES))
        # Column-wise 2 x 1 kernel over [state above, state left]; groups=2 keeps the directions apart. No bias:
        # the input-to-state conv has one, and the zero states left of the image must stay zero.
        self.state_to_state = nn.Conv1d(2 * hidden, 8 * hidden, 2, groups=2, bias=False)
        if learn_initial_state:  # zero at first: training starts from the zero-state model
            self.initial_hidden = nn.Parameter(torch.zeros(2, hidden))  # h_0 per direction, on the image's border
            self.initial_cell = nn.Parameter(torch.zeros(2, hidden))  # c_0 per direction

    def initial_state(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0), each (2, h) [left-to-right, right-to-left]: the learned initial states, or zeros."""
        if hasattr(self, "initial_hidden"):
            return self.initial_hidden, self.initial_cell
        zeros = like.new_zeros(2, self.hidden)
        return zeros, zeros

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The fast path: both directions' gates in one batched product, then :class:`DiagonalScan`."""
        b, _, height, width = x.shape
        hid = self.hidden
        # The right-to-left direction runs on the mirrored map; both directions' inputs are laid out
        # (direction, row, column, batch, feature) so that the scan reads every diagonal as a strided view.
        pixels = x.permute(2, 3, 0, 1)  # (H, W, B, 2h)
        pixels = torch.stack([pixels, pixels.flip(1)]).view(2, height * width * b, 2 * hid)
        weight_in = self.input_to_state.masked_weight().view(2, 4 * hid, 2 * hid).transpose(1, 2)  # (2, 2h, 4h)
        bias_in = self.input_to_state.bias.view(2, 1, 4 * hid)
        gates_in = torch.baddbmm(bias_in, pixels, weight_in).view(2, height, width, b, 4 * hid)
        if bias is not None:  # conditioning (class or context), laid out and mirrored like the gates
            bias = bias.expand(b, 8 * hid, height, width).view(b, 2, 4 * hid, height, width).permute(1, 3, 4, 0, 2)
            gates_in = gates_in + torch.cat([bias[:1], bias[1:].flip(2)])
        # Grouped conv1d weight (2*4h, h, 2) as one (2h, 4h) matrix per direction acting on [state above, state left].
        weight = self.state_to_state.weight.view(2, 4 * hid, hid, 2).permute(0, 3, 2, 1).reshape(2, 2 * hid, 4 * hid)
        h0, c0 = self.initial_state(weight)
        states = DiagonalScan.apply(gates_in, weight, h0, c0)  # (2, H, W, B, h)
        combined = states[0] + shift_down(states[1].flip(1), h0[1], row_dim=0)  # (H, W, B, h)
        return combined.permute(2, 3, 0, 1)  # (B, h, H, W)

    def forward_reference(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Section 3.2 written plainly with convolutions on (B, F, H, W) maps; the fast path is tested equal to it."""
        b, _, height, width = x.shape
        hid = self.hidden
        gates = self.input_to_state(x)
        if bias is not None:
            gates = gates + bias
        forward_gates, backward_gates = gates.split(4 * hid, dim=1)
        gates_in = skew(torch.cat([forward_gates, backward_gates.flip(3)], dim=1))  # (B, 8h, H, W+H-1)
        h0, c0 = self.initial_state(x)
        h_init = h0.reshape(1, 2 * hid, 1).expand(b, 2 * hid, height)  # (B, 2h, H): both directions
        c_init = c0.reshape(1, 2, hid, 1).expand(b, 2, hid, height)
        h, c = h_init, c_init  # the column before the first diagonal
        rows = torch.arange(height, device=x.device)
        states = []
        for t in range(gates_in.shape[3]):
            # [state above, state left] = the previous column at rows r-1 and r; the row above the image is h_0.
            recurrent = self.state_to_state(torch.cat([h_init[:, :, :1], h], dim=2))  # (B, 8h, H)
            gates = (gates_in[:, :, :, t] + recurrent).view(b, 2, 4 * hid, height)
            h4, c = lstm_update(gates, c, dim=2)  # (B, 2, h, H)
            # Cells of this column outside the image (left of it, or right) hold the initial states.
            inside = ((t - rows >= 0) & (t - rows < width)).view(1, 1, 1, height)
            h4, c = torch.where(inside, h4, h0.view(1, 2, hid, 1)), torch.where(inside, c, c_init)
            h = h4.reshape(b, 2 * hid, height)
            states.append(h)
        states = unskew(torch.stack(states, 3))  # (B, 2h, H, W)
        forward_states, backward_states = states.split(hid, dim=1)
        return forward_states + shift_down(backward_states.flip(3), h0[1].view(hid, 1, 1))  # (B, h, H, W)

    def stepper(self, batch: int, height: int, width: int, like: torch.Tensor) -> DiagonalBiLSTMLayerStepper:
        return DiagonalBiLSTMLayerStepper(self, batch, height, width, like)


class DiagonalBiLSTMLayerStepper(LayerStepper):
    """The layer at one pixel. The left-to-right state follows from the pixel above and the one to its left; the
    right-to-left state of a row needs the whole row, so it is computed in ``end_row``, and the next row reads it
    through the one-row down-shift. Caches: (B, rows, columns, h) with borders that hold the initial states."""

    def __init__(self, layer: DiagonalBiLSTMLayer, batch: int, height: int, width: int, like: torch.Tensor):
        hid = self.hidden = layer.hidden
        self.weight_in, self.bias_in = linear_of(layer.input_to_state)  # (8h, 2h): [left-to-right | right-to-left]
        # Per direction, the (4h, 2h) state-to-state matrix acting on [state above, state beside].
        self.state_to_state = (layer.state_to_state.weight.view(2, 4 * hid, hid, 2).permute(0, 1, 3, 2)
                               .reshape(2, 4 * hid, 2 * hid))
        self.stream = like.new_zeros(batch, height, width, 2 * hid)  # the layer's input, for the right-to-left pass
        # Left-to-right: a border row on top and a column on the left. Right-to-left: a row on top and a column on
        # the right. Borders hold the initial states; the rest is overwritten as the image is generated.
        h0, c0 = layer.initial_state(like)
        self.ltr_h = h0[0].expand(batch, height + 1, width + 1, hid).clone()
        self.ltr_c = c0[0].expand(batch, height, width + 1, hid).clone()
        self.rtl_h = h0[1].expand(batch, height + 1, width + 1, hid).clone()
        self.rtl_c = c0[1].expand(batch, height, width + 1, hid).clone()

    def at(self, stream, i, j, bias):
        hid = self.hidden
        self.stream[:, i, j] = stream
        gates = F.linear(stream, self.weight_in[:4 * hid], self.bias_in[:4 * hid])  # left-to-right only, (B, 4h)
        if bias is not None:
            gates = gates + bias[:, :4 * hid]
        beside = torch.cat([self.ltr_h[:, i, j + 1], self.ltr_h[:, i + 1, j]], dim=1)  # [above, left]
        h, c = lstm_update(gates + F.linear(beside, self.state_to_state[0]), self.ltr_c[:, i, j], dim=-1)
        self.ltr_h[:, i + 1, j + 1] = h
        self.ltr_c[:, i, j + 1] = c
        # The right-to-left states reach row i from row i - 1 (the down-shift); row -1 is the initial row on top.
        return h + self.rtl_h[:, i, j]

    def end_row(self, i, bias):
        """Row i is complete: run the right-to-left direction along it."""
        hid = self.hidden
        gates_row = F.linear(self.stream[:, i], self.weight_in[4 * hid:], self.bias_in[4 * hid:])  # (B, W, 4h)
        if bias is not None:
            gates_row = gates_row + bias[:, :, 4 * hid:]
        for j in reversed(range(gates_row.shape[1])):
            beside = torch.cat([self.rtl_h[:, i, j], self.rtl_h[:, i + 1, j + 1]], dim=1)  # [above, right]
            h, c = lstm_update(gates_row[:, j] + F.linear(beside, self.state_to_state[1]), self.rtl_c[:, i, j + 1],
                               dim=-1)
            self.rtl_h[:, i + 1, j] = h
            self.rtl_c[:, i, j] = c


@register
class DiagonalBiLSTM(RecurrentPixelModel):
    """Section 3.2: a stack of Diagonal BiLSTM layers (see :class:`RecurrentPixelModel`)."""

    name = "diagonal_bilstm"
    Config = DiagonalBiLSTMConfig

    def make_layer(self, colours: ColourGroups) -> nn.Module:
        return DiagonalBiLSTMLayer(self.settings.hidden, colours, self.settings.learn_initial_state)
