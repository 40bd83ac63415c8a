"""The decoder's stepper of the integer Row LSTM and Diagonal BiLSTM ("Pixel Recurrent Neural Networks", van den
Oord et al., ICML 2016, sections 3.1-3.2): :class:`.recurrent.RecurrentStepper` in fewer operations.

The stack of :meth:`.recurrent.IntegerRecurrent.body` (the 7 x 7 mask-A input, each LSTM layer, its 1 x 1 output
map, the residual and skip connections, the head) with its operations looked up, checked and prepared once, and its
buffers made once (:mod:`.steps`): the input layer reads a :class:`.steps.RowWindows`, the 1 x 1 maps carry their
biases on a constant 1 of their input, the layers' outputs lie side by side for the skips' sum, the residual sums
run in place. Each family gives the LSTM layer at one pixel in the same style (``fast_layer``), keeping only the rows
of states a pixel reads. The same prepared weights, exact sums and roundings as the reference stepper, so the same
integers, which the tests check value by value.
"""

from __future__ import annotations

import torch

from .arith import DTYPE, Fixed
from .layers import conditioning
from .ops import Gates, damaged
from .passes import at_pixel
from .recurrent import CellBuffers, CellTables, JoinedGates
from .steps import AddAt, HeadAt, OneByOne, RowWindows, base_plus_products, prepared_linear, with_one


class FastRecurrentStepper:
    """:class:`.recurrent.RecurrentStepper`, prepared once: what the decoder runs for the recurrent families."""

    def __init__(self, model, batch: int, y, context: Fixed | None):
        net, config, device = model.net, model.config, model.device
        self.model, self.layers = model, config["layers"]
        self.channels, _, width = model.image_shape
        self.residual, self.skip = config["residual"], config["skip"]
        self.biases = conditioning(net, config, y, context, self.layers)  # whole maps, once
        hid = config["hidden"]
        self.input = RowWindows("input", prepared_linear(net, "input", 0, False), batch, width, device)
        exp = self.input.op.out_exp
        self.stream = torch.empty(batch, 2 * hid, dtype=DTYPE, device=device)  # the last layer's output, for the head
        self.state_one, self.state = with_one(batch, hid, device)  # a layer's states at the pixel, and a 1
        self.outs, outs = with_one(batch, self.layers * 2 * hid, device)  # the layers' outputs: the skips' input
        self.steps = []
        self.rows = model.fast_rows(batch, self.biases)  # what the layers share to finish a row, if anything
        for k in range(self.layers):
            bias_exp = None if self.biases[k] is None else self.biases[k].exp
            layer = model.fast_layer(k, batch, exp, bias_exp, self.rows)
            output = OneByOne(prepared_linear(net, f"outputs.{k}", layer.out_exp, False))
            residual = AddAt(net, f"residual.{k}", (exp, output.op.out_exp)) if self.residual else None
            exp = residual.out_exp if residual else output.op.out_exp
            self.steps.append((layer, output, outs[:, k * 2 * hid:(k + 1) * 2 * hid], residual))
        if self.rows is not None:
            self.rows.ready()
        self.head = HeadAt(net, self.skip, [step[1].op.out_exp for step in self.steps], exp, batch, 2 * hid, device)

    def logits(self, x, i, j):
        """(B, C, K): the pixel's integer logits as its channels are known so far (a buffer, until the next call)."""
        slot = self.input.slot(i, j)
        if self.input.reads_own_pixel:  # mask A reads a pixel's earlier colours; with one colour, none
            slot.copy_(self.model.to_inputs(x[:, :, i, j]))
        consume = self.channels == 1  # one pass a pixel: row sums can take a pixel's own taps in place
        # Each layer's input is written where the layer reads it (its cache of the stream), not copied there
        stream = self.input.finish(j, self.steps[0][0].input_at(i, j), consume)
        last = self.layers - 1
        for k, (layer, output, out, residual) in enumerate(self.steps):
            bias = None if self.biases[k] is None else at_pixel(self.biases[k], i, j).values
            layer.at(i, j, bias, self.state, consume)
            after = self.steps[k + 1][0].input_at(i, j) if k < last else self.stream  # the next layer's input
            if residual is None and not self.skip:
                stream = output(self.state_one, after)  # the layer's output is the next layer's stream
                continue
            output(self.state_one, out)
            if self.skip and k == last:
                break  # the head reads the skips alone: the last residual sum would go nowhere
            stream = residual(stream, out, out=after) if residual is not None else after.copy_(out)
        return self.model.unfold(self.head(self.outs, stream))

    def commit(self, x, i, j):
        """The pixel's values are all known: the first layer's cache gets them (later pixels read every channel)."""
        self.input.slot(i, j).copy_(self.model.to_inputs(x[:, :, i, j]))

    def end_row(self, x, i):
        if self.rows is not None:
            self.rows.end_row(i)
        else:
            for layer, *_ in self.steps:
                layer.end_row(i)



class CellAt:
    """An LSTM layer's gates and cell at the pixels of a row (:class:`.ops.Gates`, then :func:`.recurrent.lstm_cell`):
    the state taps that read the row above summed for the whole row at once, and the gates' rounding, their clamp
    and the table's index made one clamp where that is exact (:class:`.recurrent.JoinedGates`).

    ``parts``: the feature counts of the state taps, in the order of the gates' weight; the first ``above`` of them
    are states of the row above, complete when the row starts: :meth:`start_row` multiplies them for every pixel of
    the row in one product, the input-to-state half (below) included; a pixel then adds its input-to-state values
    and the products of its other taps.
    """

    def __init__(self, name: str, op: Gates, in_exp: int, add_exp: int, parts: list[int], tables: CellTables,
                 batch: int, width: int, above: int):
        self.joined = JoinedGates(name, op, in_exp, add_exp, tables)
        if sum(parts) != self.joined.weight.shape[0]:
            raise damaged(name, f"has {self.joined.weight.shape[0]} state taps, not {sum(parts)}")
        weights = self.joined.weight.split(parts)
        self.above_weights, self.own_weights = weights[:above], weights[above:]
        hid = op.weight.shape[1] // 4
        like = self.joined.base
        self.partial = like.new_empty(width * batch, 4 * hid)  # (W B, 4h): the row's sums of the taps above
        self.partials = self.partial.view(width, batch, -1).unbind()
        self.pre = like.new_empty(batch, 4 * hid)
        self.index = torch.empty(batch, 4 * hid, dtype=torch.int64, device=like.device)
        self.buffers = CellBuffers(batch, hid, like)

    @property
    def fused(self) -> bool:
        """Whether the gates' rounding and the table's index run as one clamp (:class:`.recurrent.JoinedGates`)."""
        return self.joined.exact

    def start_row(self, above: list[torch.Tensor]) -> None:
        """A row starts: its taps above, each (W B, features) in the order of ``parts``, for all its pixels."""
        base_plus_products(self.partial, self.joined.base, zip(above, self.above_weights))

    def __call__(self, j: int, added: torch.Tensor, taps: list[torch.Tensor], cell: torch.Tensor, h: torch.Tensor,
                 c: torch.Tensor) -> None:
        """The state ``h`` and cell state ``c`` (B, h) at pixel j of the row, whose input-to-state values are
        ``added`` (B, 4h), other state taps ``taps`` and previous cell state ``cell``, written where ``h`` and ``c``
        are."""
        pre = torch.add(self.partials[j], added, alpha=self.joined.factor, out=self.pre)
        for part, weight in zip(taps, self.own_weights):
            pre.addmm_(part, weight)
        self.joined.cell(pre, cell, h, c, self.index, self.buffers)
