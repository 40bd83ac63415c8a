"""The Diagonal BiLSTM of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016, section 3.2) in exact
integers.

Each layer, as :mod:`pixelrnn.models.diagonal_bilstm`: a 1 x 1 mask-B input-to-state map gives both directions'
gates; the left-to-right state of pixel (r, c) follows from the states above it, (r - 1, c), and left of it,
(r, c - 1), with the cell state of the one on the left; cells outside the image hold the learned initial state. The
right-to-left direction is the same recurrence on the image mirrored left to right, mirrored back, and shifted down
one row (its first row is its initial state), so that a pixel never sees the pixels to its right in its own row.

The full pass walks the anti-diagonals (every cell of one depends only on the one before: the skew of the paper,
done by indexing), the whole batch at once; the step-wise pass computes the left-to-right state at each new pixel and
the right-to-left states of a row when the row is complete. Each cell is the same integer function of the same
neighbours in both, so the order of the walk changes nothing.
"""

from __future__ import annotations

import torch

from .arith import DTYPE, Fixed
from .network import Network
from .passes import PixelCaches
from .recurrent import H0_BOUND, H_EXP, CellBuffers, IntegerRecurrent, cell_tables, gates_and_cell, lstm_cell
from .recurrent_steps import CellAt
from .steps import AddAt, OneByOne, conditioning_sum, prepared_linear


def diagonal_scan(net: Network, name: str, direction: int, gates_in: Fixed, h0: torch.Tensor,
                  c0: torch.Tensor) -> torch.Tensor:
    """The left-to-right recurrence over a whole map: gates_in (B, H, W, 4h) -> states (B, H, W, h) at H_EXP.

    States live in a grid with a border row on top and a border column on the left that hold the initial state
    (``h0``, ``c0``), flattened, as the float scan keeps them: cell (r, c) at (r + 1)(W + 1) + c + 1. Diagonal t holds
    the cells (r, t - r); they lie W apart, and so do their neighbours above and on the left, so each is a strided
    view (and the diagonal's inputs, W - 1 apart in the flat map): no index is gathered.
    """
    tables = cell_tables(net)
    batch, height, width, four_h = gates_in.values.shape
    hid = h0.shape[-1]
    flat_in = gates_in.values.reshape(batch, height * width, four_h)
    h = h0.expand(batch, (height + 1) * (width + 1), hid).clone()
    c = c0.expand(batch, (height + 1) * (width + 1), hid).clone()
    for t in range(height + width - 1):
        lo, hi = max(0, t - width + 1), min(height - 1, t)
        cells = slice(lo * width + width + t + 2, hi * width + width + t + 3, width)
        above = slice(cells.start - width - 1, cells.stop - width - 1, width)
        left = slice(cells.start - 1, cells.stop - 1, width)
        inputs = flat_in[:, lo * (width - 1) + t:hi * (width - 1) + t + 1:max(1, width - 1)]  # (B, n, 4h)
        taps = torch.cat([h[:, above], h[:, left]], dim=-1)  # [above, left] (B, n, 2h)
        h[:, cells], c[:, cells] = gates_and_cell(net, f"{name}.gates.{direction}", Fixed(taps, H_EXP),
                                                  Fixed(inputs, gates_in.exp), f"{name}.state_to_state", 2,
                                                  direction, c[:, left], tables)  # the cell on the left's state
    return h.view(batch, height + 1, width + 1, hid)[:, 1:, 1:]


class IntegerDiagonalBiLSTM(IntegerRecurrent):
    """:class:`pixelrnn.models.diagonal_bilstm.DiagonalBiLSTM` in integers."""

    family = "diagonal_bilstm"

    def layer_map(self, net: Network, k: int, stream: Fixed, bias: Fixed | None) -> Fixed:
        name = f"lstm_layers.{k}"
        gates_in = self.input_to_state(net, k, stream, bias)  # (B, H, W, 8h): [left-to-right | right-to-left]
        initial = net.initial(f"{name}.initial", name)
        four_h = gates_in.values.shape[-1] // 2
        ltr = diagonal_scan(net, name, 0, Fixed(gates_in.values[..., :four_h], gates_in.exp), initial.hidden[0],
                            initial.cell[0])
        mirrored = Fixed(gates_in.values[..., four_h:].flip(2), gates_in.exp)
        rtl = diagonal_scan(net, name, 1, mirrored, initial.hidden[1], initial.cell[1]).flip(2)
        top = initial.hidden[1].expand(rtl.shape[0], 1, rtl.shape[2], rtl.shape[3])  # the row above the image
        shifted = torch.cat([top, rtl[:, :-1]], dim=1)  # row i reads the right-to-left states of row i - 1
        return net.add(f"{name}.sum", Fixed(ltr, H_EXP), Fixed(shifted, H_EXP), in_bound=H0_BOUND)

    def layer_steps(self, k: int, batch: int, caches: PixelCaches) -> DiagonalLayerSteps:
        return DiagonalLayerSteps(self, k, batch)

    def fast_layer(self, k: int, batch: int, in_exp: int, bias_exp: int | None,
                   rows: RightToLeftRows) -> FastDiagonalLayer:
        return FastDiagonalLayer(self, k, batch, in_exp, bias_exp, rows)

    def layer_step_values(self, width: int, hidden: int) -> int:
        # Two rows of states and one of cells per direction; the row's right-to-left gates, its inputs, and both
        # directions' sums of the taps above
        return 6 * (width + 1) * hidden + width * (3 * 4 * hidden + 2 * hidden + 1)

    def fast_rows(self, batch: int, biases: list[Fixed | None]) -> RightToLeftRows:
        return RightToLeftRows(self, batch, biases)


class DiagonalLayerSteps:
    """One Diagonal BiLSTM layer at one pixel. Left-to-right: a border row on top and a column on the left.
    Right-to-left: a row on top and a column on the right, run along a row once it is complete (``end_row``)."""

    def __init__(self, model: IntegerDiagonalBiLSTM, k: int, batch: int):
        self.model, self.k, self.name = model, k, f"lstm_layers.{k}"
        net = model.net
        initial = net.initial(f"{self.name}.initial", self.name)
        self.tables = cell_tables(net)
        _, height, width = model.image_shape
        hid = initial.hidden.shape[-1]
        self.ltr_h = initial.hidden[0].expand(batch, height + 1, width + 1, hid).clone()
        self.ltr_c = initial.cell[0].expand(batch, height, width + 1, hid).clone()
        self.rtl_h = initial.hidden[1].expand(batch, height + 1, width + 1, hid).clone()
        self.rtl_c = initial.cell[1].expand(batch, height, width + 1, hid).clone()
        self.row = None  # the right-to-left gates of the current row, (B, W, 4h), and their exponent
        self.width = width

    def at(self, stream: Fixed, i: int, j: int, bias: Fixed | None) -> Fixed:
        net = self.model.net
        gates_in = self.model.input_to_state(net, self.k, stream, bias)  # (B, 8h): a 1 x 1 map of this pixel
        four_h = gates_in.values.shape[-1] // 2
        if self.row is None:
            self.row = (gates_in.values.new_zeros(gates_in.values.shape[0], self.width, four_h), gates_in.exp)
        self.row[0][:, j] = gates_in.values[:, four_h:]
        taps = torch.cat([self.ltr_h[:, i, j + 1], self.ltr_h[:, i + 1, j]], dim=-1)  # [above, left]
        pre = net.gates(f"{self.name}.gates.0", Fixed(taps, H_EXP), Fixed(gates_in.values[:, :four_h], gates_in.exp),
                        f"{self.name}.state_to_state", 2, 0)
        h, c = lstm_cell(pre.values, self.ltr_c[:, i, j], self.tables)
        self.ltr_h[:, i + 1, j + 1] = h
        self.ltr_c[:, i, j + 1] = c
        # The right-to-left states reach row i from row i - 1 (the down-shift); row -1 is the initial row on top.
        return net.add(f"{self.name}.sum", Fixed(h, H_EXP), Fixed(self.rtl_h[:, i, j], H_EXP), in_bound=H0_BOUND)

    def end_row(self, i: int) -> None:
        """Row i is complete: run the right-to-left direction along it."""
        net = self.model.net
        row, exp = self.row
        for j in reversed(range(self.width)):
            taps = torch.cat([self.rtl_h[:, i, j], self.rtl_h[:, i + 1, j + 1]], dim=-1)  # [above, right]
            pre = net.gates(f"{self.name}.gates.1", Fixed(taps, H_EXP), Fixed(row[:, j], exp),
                            f"{self.name}.state_to_state", 2, 1)
            h, c = lstm_cell(pre.values, self.rtl_c[:, i, j + 1], self.tables)
            self.rtl_h[:, i + 1, j] = h
            self.rtl_c[:, i, j] = c


class RightToLeftRows:
    """The right-to-left direction of every layer of a fast stepper, run along a row once it is complete.

    A layer's right-to-left pass over row i reads only its own gates of row i and its own states of row i - 1, not
    another layer's: so the passes of all layers run together, the layers a batch dimension of each product
    (``baddbmm``: each layer with its own weights) and of each step of the cell, 28 steps a row for all of them
    instead of 28 per layer. Their input-to-state gates too come from one product for the whole row and every layer,
    of the streams that the layers kept at each pixel. States are kept as by each layer alone (two rows, the border
    column initial), and each layer reads its own views of them. The same exact sums and roundings: a layer whose
    cell cannot join its clamps (:class:`.recurrent_steps.CellAt`) makes all run one layer after the other.
    """

    def __init__(self, model: IntegerDiagonalBiLSTM, batch: int, biases: list[Fixed | None]):
        net, layers = model.net, model.config["layers"]
        self.biases = biases  # the layers' conditioning maps (B, H or 1, W or 1, 8h), or None
        _, _, self.width = model.image_shape
        initials = [net.initial(f"lstm_layers.{k}.initial", f"lstm_layers.{k}") for k in range(layers)]
        hid = initials[0].hidden.shape[-1]
        self.hid, self.batch = hid, batch
        self.h = torch.stack([q.hidden[1].to(DTYPE).expand(batch, 2, self.width + 1, hid) for q in initials])
        self.c = torch.stack([q.cell[1].to(DTYPE).expand(batch, self.width + 1, hid) for q in initials])
        self.gates = self.h.new_zeros(layers, self.width, batch, 4 * hid)  # each layer's gates of the row
        self.cells: list = [None] * layers  # each layer's CellAt (:meth:`join`)
        # Each layer's input-to-state map of its right-to-left half: (weight (2h + 1, 4h), bound, conditioning sum)
        self.inputs: list = [None] * layers
        self.streams = None  # (L, W, B, 2h + 1): each layer's input at each pixel of the row, and a 1

    def join(self, k: int, cell, weight: torch.Tensor, bound: int, conditioned) -> torch.Tensor:
        """Layer k's right-to-left cell (a :class:`.recurrent_steps.CellAt`) and the right-to-left half of its
        input-to-state map (weight (2h + 1, 4h), its bound, its conditioning sum or None) join the rows; returns
        where the layer keeps its input at each pixel of the row, (W, B, 2h + 1), a 1 last."""
        self.cells[k] = cell
        self.inputs[k] = (weight, bound, conditioned)
        if self.streams is None:
            self.streams = torch.ones(len(self.cells), self.width, self.batch, weight.shape[0], dtype=DTYPE,
                                      device=weight.device)
        return self.streams[k]

    def end_row(self, i: int) -> None:
        """Row i is complete: run every layer's right-to-left direction along it."""
        self.h[:, :, 0].copy_(self.h[:, :, 1])  # row i - 1's states become the row above
        layers, four_h = len(self.cells), 4 * self.hid
        gates = self.gates.view(layers, -1, four_h)  # (L, W B, 4h)
        torch.bmm(self.streams.view(layers, self.width * self.batch, -1), self.input_weights, out=gates).floor_()
        gates.clamp_(-self.input_bounds, self.input_bounds)
        for k, (_, _, conditioned) in enumerate(self.inputs):
            if conditioned is not None:
                bias = self.biases[k].values
                row = bias[:, i if bias.shape[1] > 1 else 0, :, four_h:].transpose(0, 1)  # (W or 1, B, 4h)
                conditioned(self.gates[k], row)
        if not all(cell.fused for cell in self.cells):
            for k, cell in enumerate(self.cells):
                self._layer_row(k, cell)
            return
        above = self.h[:, :, 0, :self.width].transpose(1, 2).reshape(len(self.cells), -1, self.hid)  # (L, W B, h)
        torch.baddbmm(self.base, above, self.above_weights, out=self.partial)
        # Every layer's joined gates are exact here and share the tables' segments: the first layer's clamp and
        # gather serve all of them
        joined = self.cells[0].joined
        h, c, partials, gates = self.row_h, self.row_c, self.row_partials, self.row_gates
        for j in reversed(range(self.width)):
            # The state tap on the right (the one above is in the row's sums), and the cell state on the right
            pre = torch.addcmul(partials[j], gates[j], self.factors, out=self.pre)
            pre.baddbmm_(h[j + 1], self.right_weights)
            joined.cell(pre, c[j + 1], h[j], c[j], self.index, self.buffers)

    def _layer_row(self, k: int, cell) -> None:
        h, c = self.h[k], self.c[k]
        cell.start_row([h[:, 0, :self.width].transpose(0, 1).reshape(-1, self.hid)])
        for j in reversed(range(self.width)):
            cell(j, self.gates[k, j], [h[:, 1, j + 1]], c[:, j + 1], h[:, 1, j], c[:, j])

    def ready(self) -> None:
        """Every layer has joined: their weights, factors and offsets stacked, (L, ...), for the batched products."""
        cells = self.cells
        if any(cell is None for cell in cells):
            raise ValueError("every layer joins the right-to-left rows before they run")
        self.above_weights = torch.stack([cell.above_weights[0] for cell in cells])  # (L, h, 4h)
        self.right_weights = torch.stack([cell.own_weights[0] for cell in cells])
        self.base = torch.stack([cell.joined.base for cell in cells])[:, None]  # (L, 1, 4h)
        self.factors = self.base.new_tensor([cell.joined.factor for cell in cells])[:, None, None]
        layers, four_h = len(cells), 4 * self.hid
        self.partial = self.base.new_empty(layers, self.width * self.batch, four_h)
        self.partials = self.partial.view(layers, self.width, self.batch, four_h)
        self.pre = self.base.new_empty(layers, self.batch, four_h)
        self.index = torch.empty(layers, self.batch, four_h, dtype=torch.int64, device=self.base.device)
        self.buffers = CellBuffers((layers, self.batch), self.hid, self.base)
        # Views made once, per column: every layer's states of the row decoded, cells, partial sums and gates
        self.row_h, self.row_c = self.h[:, :, 1].unbind(2), self.c.unbind(2)
        self.row_partials, self.row_gates = self.partials.unbind(1), self.gates.unbind(1)
        self.input_weights = torch.stack([weight for weight, _, _ in self.inputs])  # (L, 2h + 1, 4h)
        self.input_bounds = self.base.new_tensor([bound for _, bound, _ in self.inputs])[:, None, None]


class FastDiagonalLayer:
    """:class:`DiagonalLayerSteps` prepared once, for :class:`.recurrent_steps.FastRecurrentStepper`. Of each
    direction's states only two rows are kept (the row above and the row being decoded; the border column holds the
    initial state), of its cells only the row being decoded, every view of them made once; the state taps [above,
    beside] go to their own rows of the gates' weight, with no joined copy."""

    def __init__(self, model: IntegerDiagonalBiLSTM, k: int, batch: int, in_exp: int, bias_exp: int | None,
                 rows: RightToLeftRows):
        net, name = model.net, f"lstm_layers.{k}"
        _, _, width = model.image_shape
        device = model.device
        self.inputs = OneByOne(prepared_linear(net, f"{name}.input_to_state", in_exp, False))
        self.conditioned, exp = conditioning_sum(net, f"{name}.conditioned", self.inputs.op.out_exp, bias_exp)
        initial = net.initial(f"{name}.initial", name)
        hid = initial.hidden.shape[-1]
        self.hid, self.width = hid, width
        tables = cell_tables(net)
        # The state taps are [above, beside]: the ones above are summed once per row
        self.ltr = CellAt(f"{name}.gates.0", net.op(f"{name}.gates.0"), H_EXP, exp, [hid, hid], tables, batch, width,
                          above=1)
        self.rtl = CellAt(f"{name}.gates.1", net.op(f"{name}.gates.1"), H_EXP, exp, [hid, hid], tables, batch, width,
                          above=1)
        self.sum = AddAt(net, f"{name}.sum", (H_EXP, H_EXP))
        self.out_exp = self.sum.out_exp  # of the sum of both directions' states it gives

        def states(direction: int, rows: int) -> torch.Tensor:
            return initial.hidden[direction].to(DTYPE).expand(batch, rows, width + 1, hid).clone()

        self.ltr_h = states(0, 2)  # (B, 2, W + 1, h): the row above, the row decoded
        self.ltr_c = initial.cell[0].to(DTYPE).expand(batch, width + 1, hid).clone()  # the row decoded
        self.rtl_h = rows.h[k]  # the right-to-left states, run by ``rows`` for all layers together
        four_h = self.inputs.weight.shape[1] // 2
        # The input-to-state map's halves: left-to-right here, at each pixel; right-to-left by ``rows``, per row
        self.ltr_weight = self.inputs.weight[:, :four_h].contiguous()
        self.streams = rows.join(k, self.rtl, self.inputs.weight[:, four_h:].contiguous(), self.inputs.op.bound,
                                 self.conditioned)  # (W, B, 2h + 1)
        self.stream_features = self.streams[..., :-1].unbind()  # W x (B, 2h)
        # Views made once, per column (0 is the border column): the row decoded, its cells, the right-to-left row kept
        self.ltr_here, self.ltr_cells = self.ltr_h[:, 1].unbind(1), self.ltr_c.unbind(1)
        self.rtl_kept = self.rtl_h[:, 1].unbind(1)
        self.ltr_in = torch.empty(batch, four_h, dtype=DTYPE, device=device)
        self.row = -1

    def input_at(self, i: int, j: int) -> torch.Tensor:
        """Where the stream at pixel (i, j) goes, (B, 2h): the row's buffer of this layer's inputs, beside a 1."""
        if i != self.row:
            if i > 0:  # row i - 1, complete, becomes the row above
                self.ltr_h[:, 0].copy_(self.ltr_h[:, 1])
            self.ltr.start_row([self.ltr_h[:, 0, 1:].transpose(0, 1).reshape(-1, self.hid)])  # above pixel j: j + 1
            self.row = i
        return self.stream_features[j]

    def at(self, i: int, j: int, bias: torch.Tensor | None, out: torch.Tensor, consume: bool) -> None:
        """The layer's output at pixel (i, j) into ``out`` (B, h), once the stream there is in :meth:`input_at`: the
        left-to-right state there plus the right-to-left state of the row above (the down-shift). The stream stays
        in the row's buffer for the right-to-left half of the input-to-state map, when the row is complete."""
        ltr_in = torch.mm(self.streams[j], self.ltr_weight, out=self.ltr_in).floor_()
        ltr_in.clamp_(-self.inputs.op.bound, self.inputs.op.bound)
        if self.conditioned is not None:
            self.conditioned(ltr_in, bias[:, :ltr_in.shape[1]])
        # The state tap on the left (the one above is in the row's sums), and the cell state on the left
        h = self.ltr_here[j + 1]
        self.ltr(j, ltr_in, [self.ltr_here[j]], self.ltr_cells[j], h, self.ltr_cells[j + 1])
        self.sum(h, self.rtl_kept[j], out=out)  # before end_row(i) the row kept is row i - 1's

    def end_row(self, i: int) -> None:
        pass  # the right-to-left direction: RightToLeftRows, for all layers
