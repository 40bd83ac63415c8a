"""The Row LSTM of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016, section 3.1) in exact integers.

Each layer, as :mod:`pixelrnn.models.row_lstm`: the input-to-state map is a 1 x k mask-B convolution along the row;
row by row, the gates add the state-to-state taps over the k states of the row above (zero beyond the row's ends, the
learned initial state above the image), and the fixed-point cell of :mod:`.recurrent` gives the row's states. The
full pass runs the H rows of a layer for the whole batch at once; the step-wise pass computes one pixel from its
input cache and the row of states above it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .arith import DTYPE, Fixed
from .network import Network
from .passes import PixelCaches
from .recurrent import H_EXP, IntegerRecurrent, cell_tables, gates_and_cell, lstm_cell
from .recurrent_steps import CellAt
from .steps import RowWindows, conditioning_sum, prepared_linear


class IntegerRowLSTM(IntegerRecurrent):
    """:class:`pixelrnn.models.row_lstm.RowLSTM` in integers."""

    family = "row_lstm"
    cpu_pass_bytes = 8 << 20

    def layer_map(self, net: Network, k: int, stream: Fixed, bias: Fixed | None) -> Fixed:
        name, kernel = f"lstm_layers.{k}", self.config["kernel"]
        gates_in = self.input_to_state(net, k, stream, bias)  # (B, H, W, 4h)
        initial = net.initial(f"{name}.initial", name)
        tables = cell_tables(net)
        batch, height, width, _ = gates_in.values.shape
        pad, hid = kernel // 2, initial.hidden.shape[-1]
        h = initial.hidden[0].expand(batch, width, hid)  # the row above the image
        c = initial.cell[0].expand(batch, width, hid)
        rows = []
        for r in range(height):
            padded = F.pad(h, (0, 0, pad, pad))  # zero states beyond the row's ends, as the convolution pads
            taps = torch.cat([padded[:, u:u + width] for u in range(kernel)], dim=-1)  # (B, W, k*h), tap-major
            h, c = gates_and_cell(net, f"{name}.gates", Fixed(taps, H_EXP), Fixed(gates_in.values[:, r], gates_in.exp),
                                  f"{name}.state_to_state", kernel, 0, c, tables)
            rows.append(h)
        return Fixed(torch.stack(rows, 1), H_EXP)  # (B, H, W, h)

    def layer_steps(self, k: int, batch: int, caches: PixelCaches) -> RowLayerSteps:
        return RowLayerSteps(self, k, batch, caches)

    def layer_step_values(self, width: int, hidden: int) -> int:
        pad = self.config["kernel"] // 2
        return 2 * (width + 2 * pad) * hidden + 2 * width * hidden + width * 4 * hidden  # states, cells, row sums

    def fast_layer(self, k: int, batch: int, in_exp: int, bias_exp: int | None, rows=None) -> FastRowLayer:
        return FastRowLayer(self, k, batch, in_exp, bias_exp)


class RowLayerSteps:
    """One Row LSTM layer at one pixel: its states, row by row, with the initial row on top and k // 2 zero columns
    each side, laid out (B, rows, columns * h) so that the k states above a pixel are one slice."""

    def __init__(self, model: IntegerRowLSTM, k: int, batch: int, caches: PixelCaches):
        self.model, self.k, self.caches = model, k, caches
        self.name, self.kernel = f"lstm_layers.{k}", model.config["kernel"]
        net = model.net
        initial = net.initial(f"{self.name}.initial", self.name)
        self.tables = cell_tables(net)
        _, height, width = model.image_shape
        hid, pad = initial.hidden.shape[-1], self.kernel // 2
        self.hid = hid
        self.states = initial.hidden.new_zeros(batch, height + 1, (width + 2 * pad) * hid)
        self.states[:, 0, pad * hid:(pad + width) * hid] = initial.hidden[0].repeat(width)
        self.cells = initial.cell.new_zeros(batch, height + 1, width, hid)
        self.cells[:, 0] = initial.cell[0]

    def at(self, stream: Fixed, i: int, j: int, bias: Fixed | None) -> Fixed:
        net, hid, kernel = self.model.net, self.hid, self.kernel
        gates_in = self.model.input_to_state(net, self.k, stream, bias, conv=self.caches.conv)  # (B, 4h)
        above = self.states[:, i, j * hid:(j + kernel) * hid]  # row i - 1, columns j - k//2 .. j + k//2
        pre = net.gates(f"{self.name}.gates", Fixed(above, H_EXP), gates_in, f"{self.name}.state_to_state", kernel)
        h, c = lstm_cell(pre.values, self.cells[:, i, j], self.tables)
        column = j + kernel // 2
        self.states[:, i + 1, column * hid:(column + 1) * hid] = h
        self.cells[:, i + 1, j] = c
        return Fixed(h, H_EXP)

    def end_row(self, i: int) -> None:
        pass


class FastRowLayer:
    """:class:`RowLayerSteps` prepared once, for :class:`.recurrent_steps.FastRecurrentStepper`: the input-to-state
    map reads a :class:`.steps.RowWindows` of the stream, and only two rows of states and cells are kept, the row
    above and the row being decoded (shifted up when a row starts), every view of them made once."""

    def __init__(self, model: IntegerRowLSTM, k: int, batch: int, in_exp: int, bias_exp: int | None):
        net, name, kernel = model.net, f"lstm_layers.{k}", model.config["kernel"]
        _, _, width = model.image_shape
        device = model.device
        self.inputs = RowWindows(f"{name}.input_to_state", prepared_linear(net, f"{name}.input_to_state", in_exp,
                                                                            False), batch, width, device)
        self.conditioned, exp = conditioning_sum(net, f"{name}.conditioned", self.inputs.op.out_exp, bias_exp)
        initial = net.initial(f"{name}.initial", name)
        hid, pad = initial.hidden.shape[-1], kernel // 2
        self.cell = CellAt(f"{name}.gates", net.op(f"{name}.gates"), H_EXP, exp, [kernel * hid], cell_tables(net),
                           batch, width, above=1)
        self.out_exp = H_EXP  # of the states it gives
        self.states = torch.zeros(batch, 2, (width + 2 * pad) * hid, dtype=DTYPE, device=device)
        self.states[:, 0, pad * hid:(pad + width) * hid] = initial.hidden[0].repeat(width)  # the row above the image
        self.cells = torch.zeros(batch, 2, width, hid, dtype=DTYPE, device=device)
        self.cells[:, 0] = initial.cell[0]
        # The k states above each pixel of the row (columns j -+ k//2), pixel-major: (W, B, k h), a view
        self.above = self.states[:, 0].unfold(1, kernel * hid, hid).transpose(0, 1)
        self.slots = [self.states[:, 1, (j + pad) * hid:(j + pad + 1) * hid] for j in range(width)]
        self.cells_above, self.cells_here = self.cells[:, 0].unbind(1), self.cells[:, 1].unbind(1)
        self.gates_in = torch.empty(batch, 4 * hid, dtype=DTYPE, device=device)
        self.row = -1

    def input_at(self, i: int, j: int) -> torch.Tensor:
        """Where the stream at pixel (i, j) goes, (B, 2h): its slot in the input-to-state map's cache."""
        if i != self.row:
            if i > 0:  # row i - 1, complete, becomes the row above
                self.states[:, 0].copy_(self.states[:, 1])
                self.cells[:, 0].copy_(self.cells[:, 1])
            self.cell.start_row([self.above.reshape(-1, self.above.shape[-1])])
            self.row = i
        return self.inputs.slot(i, j)

    def at(self, i: int, j: int, bias: torch.Tensor | None, out: torch.Tensor, consume: bool) -> None:
        """The layer's states at pixel (i, j) into ``out`` (B, h), once the stream there is in :meth:`input_at`."""
        gates_in = self.inputs.finish(j, self.gates_in, consume)
        if self.conditioned is not None:
            self.conditioned(gates_in, bias)
        self.cell(j, gates_in, [], self.cells_above[j], self.slots[j], self.cells_here[j])
        out.copy_(self.slots[j])

    def end_row(self, i: int) -> None:
        pass
