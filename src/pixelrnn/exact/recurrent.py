"""What the integer Row LSTM and Diagonal BiLSTM share: the LSTM cell in fixed point, and the stack around it.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), equation 3, in integers:

    [o, f, i, g] = sigmoid(pre_o, pre_f, pre_i), tanh(pre_g)    tables at input exponent T_IN, 15-bit outputs
    c = f . c_prev + i . g                                      fixed point, exponent C_EXP, clamped to +-C_BOUND
    h = o . tanh(c)                                             exponent H_EXP (15): h in [-1, 1]

The pre-activations are the exact sum of the input-to-state map and the state-to-state taps, rescaled once to the
tables' input exponent (:class:`.ops.Gates`). Every product of two 15-bit fractions is an exact integer below
2**46, rescaled by round half up: no float rounding anywhere, and no calibration either (the cell's exponents are
fixed). The stack (a 7 x 7 mask-A input, each layer's 1 x 1 output map, residual and skip connections, the head) is
that of :mod:`pixelrnn.models.recurrent`, written once for both passes as the PixelCNN's is; each family provides
its layer's full-map recurrence and its step-wise form.
"""

from __future__ import annotations

import torch

from .arith import EXACT_LIMIT, Fixed, pow2
from .layers import conditioning, head
from .model import IntegerModel
from .network import Network
from .ops import Gates, damaged
from .passes import FullMap, PixelCaches, at_pixel

T_IN = 10  # the sigmoid and tanh tables read integers in units of 2**-10
T_OUT = 15  # and give 15-bit fractions: sigmoid in [0, 2**15], tanh in [-2**15, 2**15]
H_EXP = 15  # h = o . tanh(c) in [-1, 1]
C_EXP = 15  # the cell state's resolution
C_BOUND = 2**30 - 1  # |c| below 2**15 (real), so f . c stays below 2**45
GATE_BOUND = 2**20  # pre-activations are clamped far beyond the tables' ends (which clamp them again)
H0_BOUND = 2**20  # a learned initial state h_0 (not squashed by a tanh) may lie beyond [-1, 1]: up to 32


class CellTables:
    """The sigmoid and tanh tables of :func:`lstm_cell`, joined so that one gather reads all four gates.

    Three segments of 2N + 1 entries: the sigmoid for o, the sigmoid for f and i, the tanh for g, each table padded at
    both ends with its end values to the longer one's N (so a clamp to +-N reads what a clamp to its own ends would).
    The sigmoid segments are pre-scaled by the power of two that the rescaling after their products divides by
    (o for h, f and i for c): the scaled entries are exact, and so the products come out already rescaled, with one
    pass fewer. ``offsets(h)``: the start of each gate's segment, added to its clamped index.
    """

    def __init__(self, sigmoid: torch.Tensor, tanh: torch.Tensor):
        half_sigmoid, self.half_tanh = (len(sigmoid) - 1) // 2, (len(tanh) - 1) // 2
        if self.half_tanh > GATE_BOUND:  # the clamp to the tanh table's ends then implies the clamp to GATE_BOUND
            raise ValueError("the tanh table reaches beyond the gates' bound")
        self.n = max(half_sigmoid, self.half_tanh)
        self.size = 2 * self.n + 1

        def padded(table: torch.Tensor, half: int) -> torch.Tensor:
            return torch.cat([table[:1].expand(self.n - half), table, table[-1:].expand(self.n - half)])

        if float(sigmoid.abs().max()) * float(tanh.abs().max()) > 2 ** (2 * T_OUT):  # h's bound, without a clamp
            raise ValueError("the sigmoid and tanh tables reach beyond their 15-bit fractions")
        sig = padded(sigmoid, half_sigmoid)
        self.joined = torch.cat([sig * pow2(H_EXP - 2 * T_OUT), sig * pow2(C_EXP - 2 * T_OUT),
                                 padded(tanh, self.half_tanh)])
        self.tanh = tanh
        self.half = tanh.new_tensor(0.5)  # the rescalings' 1/2, as a tensor that addcmul adds to
        self.squash_offset = tanh.new_tensor(0.5 + self.half_tanh)
        self._offsets: dict[int, torch.Tensor] = {}

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """The four gates [o', f', i', g] (..., 4h) at joined indices (int64, offsets added)."""
        return self.joined.index_select(0, index.reshape(-1)).view(index.shape)

    def offsets(self, hid: int) -> torch.Tensor:
        if hid not in self._offsets:
            starts = [self.n] * hid + [self.n + self.size] * (2 * hid) + [self.n + 2 * self.size] * hid
            self._offsets[hid] = torch.tensor(starts, dtype=self.joined.dtype, device=self.joined.device)
        return self._offsets[hid]


def cell_tables(net: Network) -> CellTables:
    """The model's :class:`CellTables`, made once and kept with its sigmoid table."""
    sigmoid = net.table_op("sigmoid")
    tanh = net.table("tanh")
    if sigmoid.joined is None or sigmoid.joined.tanh is not tanh:
        sigmoid.joined = CellTables(sigmoid.as_float(), tanh)
    return sigmoid.joined


def lstm_cell(pre: torch.Tensor, cell: torch.Tensor, tables: CellTables) -> tuple[torch.Tensor, torch.Tensor]:
    """Equation 3 on integers: pre-activations [o, f, i, g] (..., 4h) at exponent T_IN and the previous cell state
    (..., h) at C_EXP -> (h at H_EXP, c at C_EXP).

    As written, with the tables of :mod:`.tables` and the rescaling of :func:`.arith.rescale` (round half up)::

        o, f, i = sigmoid(pre[o, f, i]);  g = tanh(pre[g])               15-bit fractions
        c = rescale(f . c_prev + i . g, 2 T_OUT - C_EXP, C_BOUND)
        h = rescale(o . tanh(rescale(c, C_EXP - T_IN, GATE_BOUND)), 2 T_OUT - H_EXP, 2**H_EXP)

    Computed with the joined tables (:class:`CellTables`): one gather for the four gates, whose sigmoid entries carry
    the rescalings' powers of two, so that each rescaling is an addition of 1/2 and a floor. Every step is exact (the
    products and sums are integers below 2**53 times powers of two), so these are the integers of the formula;
    the tests hold the two equal.
    """
    hid = pre.shape[-1] // 4
    index = torch.clamp(pre, -tables.n, tables.n).add_(tables.offsets(hid)).to(torch.int64)
    return gated_cell(tables.gather(index), cell, tables)


class CellBuffers:
    """Where a stepper's LSTM cell writes what it computes on the way (:func:`gated_cell`): the gathered gates and
    their four parts, the tanh's index, its value. Made once; a cell then makes no new tensors."""

    def __init__(self, batch: int | tuple[int, ...], hid: int, like: torch.Tensor):
        shape = (batch,) if isinstance(batch, int) else tuple(batch)  # (B,), or (layers, B) for a stack's cells
        self.gates = like.new_empty(*shape, 4 * hid)
        self.flat_gates = self.gates.view(-1)
        self.parts = self.gates.split(hid, dim=-1)  # o', f', i', g
        self.squash = like.new_empty(*shape, hid)
        self.index = torch.empty(*shape, hid, dtype=torch.int64, device=like.device)
        self.flat_squashed = like.new_empty(*shape, hid).view(-1)


def gated_cell(gates: torch.Tensor, cell: torch.Tensor, tables: CellTables, h: torch.Tensor | None = None,
               c: torch.Tensor | None = None, buffers: CellBuffers | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lstm_cell` from its gathered gates (..., 4h), [o', f', i', g] (the sigmoid ones pre-scaled). A stepper
    gives where h and c go and its ``buffers`` (whose ``gates`` then hold the gates): no new tensors."""
    if buffers is None:
        o, f, i, g = gates.chunk(4, dim=-1)
        squash = index = squashed = None
    else:
        (o, f, i, g), squash, index, squashed = buffers.parts, buffers.squash, buffers.index, buffers.flat_squashed
    # c = floor(f' c_prev + i' g + 1/2): the rescaling of f c_prev + i g, the half added first
    c = torch.addcmul(tables.half, i, g, out=c).addcmul_(f, cell).floor_().clamp_(-C_BOUND, C_BOUND)
    # The tanh table's index: floor(c 2**-(C_EXP - T_IN) + 1/2) clamped to its ends, shifted to start at 0; clamped
    # first, the value is not negative, and the conversion to int64 (truncation) is the floor.
    squash = torch.add(tables.squash_offset, c, alpha=pow2(T_IN - C_EXP), out=squash).clamp_(0, 2 * tables.half_tanh)
    index = squash.to(torch.int64) if index is None else index.copy_(squash)
    squashed = torch.index_select(tables.tanh, 0, index.view(-1), out=squashed).view(c.shape)
    # |o' tanh| <= 2**H_EXP (the tables' ends, checked by CellTables), so h needs no clamp
    h = torch.addcmul(tables.half, squashed, o, out=h).floor_()
    return h, c


class JoinedGates:
    """A finished :class:`.ops.Gates` and the cell after it, with the gates' rounding and the cell's table index in
    one clamp where that is exact.

    The pre-activations v = added * factor + 1/2 + taps @ W are what ``Gates`` floors and clamps to +-GATE_BOUND,
    and :func:`lstm_cell` then clamps to the joined table's +-N and offsets by its segment's start. Here each
    segment's start is added with the 1/2 (``base``), before the products, and one clamp to [start - N, start + N]
    follows (``lo``, ``hi``): the clamped value is not negative, so its conversion to int64 is its floor, and
    floor(clamp(v)) = clamp(floor(v)) for integer ends. Exact (``exact``) when the accumulators, offsets added, stay
    below 2**53: proved here from the gates' own bound; elsewhere ``base`` holds the 1/2 alone and the two steps run
    apart (:meth:`cell` either way).
    """

    def __init__(self, name: str, op: Gates, in_exp: int, add_exp: int, tables: CellTables):
        if not isinstance(op, Gates) or (op.in_exp, op.add_exp) != (in_exp, add_exp) or op.out_exp is None:
            raise damaged(name, f"does not take states of exponent {in_exp} and inputs of exponent {add_exp}")
        if op.prepared is None:
            op.prepare()
        self.weight, self.factor, half = op.prepared
        self.tables = tables
        hid = op.weight.shape[1] // 4
        offsets = tables.offsets(hid)
        shift = op.acc_exp - op.out_exp
        worst = op.worst_case() + (int(offsets.max()) << max(shift, 0))
        self.exact = tables.n <= op.bound and worst < EXACT_LIMIT and shift >= 0
        self.base = (offsets if self.exact else torch.zeros_like(offsets)) + half
        self.lo, self.hi = offsets - tables.n, offsets + tables.n
        self.bound = op.bound

    def cell(self, pre: torch.Tensor, cell: torch.Tensor, h: torch.Tensor | None = None,
             c: torch.Tensor | None = None, index: torch.Tensor | None = None,
             buffers: CellBuffers | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c) from the pre-activations v (``base`` included; overwritten) and the previous cell state. A stepper
        gives where h and c go, an int64 ``index`` buffer like ``pre`` and its cell's ``buffers``: no new tensors."""
        if not self.exact:
            out_h, out_c = lstm_cell(pre.floor_().clamp_(-self.bound, self.bound), cell, self.tables)
            return (out_h, out_c) if h is None else (h.copy_(out_h), c.copy_(out_c))
        clamped = torch.clamp(pre, self.lo, self.hi, out=pre)
        index = clamped.to(torch.int64) if index is None else index.copy_(clamped)  # the floor of what is not negative
        if buffers is None:
            return gated_cell(self.tables.gather(index), cell, self.tables)
        torch.index_select(self.tables.joined, 0, index.view(-1), out=buffers.flat_gates)
        return gated_cell(buffers.gates, cell, self.tables, h, c, buffers)


def gates_and_cell(net: Network, name: str, taps: Fixed, added: Fixed, module: str, count: int, direction: int,
                   cell: torch.Tensor, tables: CellTables) -> tuple[torch.Tensor, torch.Tensor]:
    """The gates ``name`` (:meth:`Network.gates`) and the cell after them (:func:`lstm_cell`): (h, c). For a
    finished model, through :class:`JoinedGates`; while calibrating (the gates are being made), the two as written."""
    op = net.ops.get(net.prefix + name)
    if net.builder is not None or not isinstance(op, Gates) or op.out_exp is None:
        return lstm_cell(net.gates(name, taps, added, module, count, direction).values, cell, tables)
    if (taps.exp, added.exp) != (op.in_exp, op.add_exp):
        raise damaged(net.prefix + name, f"expects exponents {op.in_exp} and {op.add_exp}")
    if op.joined is None or op.joined[0] is not tables:  # made once per model (and tables)
        op.joined = (tables, JoinedGates(net.prefix + name, op, op.in_exp, op.add_exp, tables))
    joined = op.joined[1]
    pre = torch.add(joined.base, added.values, alpha=joined.factor)  # (..., 4h), contiguous
    pre.view(-1, pre.shape[-1]).addmm_(taps.values.reshape(-1, taps.values.shape[-1]), joined.weight)
    return joined.cell(pre, cell)


class IntegerRecurrent(IntegerModel):
    """The stack of :class:`pixelrnn.models.recurrent.RecurrentPixelModel` in integers; subclasses give
    ``layer_map(net, k, stream, bias)`` (a whole map) and ``layer_steps(k, batch, caches)`` (one pixel)."""

    def body(self, net: Network, conv, layer, u: Fixed, biases: list[Fixed | None]) -> Fixed:
        """The network on the image integers ``u`` (a map or one pixel); ``layer(k, stream, bias)`` runs LSTM layer
        k on its input: logits (..., C*K)."""
        config = self.config
        stream = conv("input", u, divisor=self.levels - 1, in_bound=self.levels - 1)
        skips = []
        for k in range(config["layers"]):
            out = net.linear(f"outputs.{k}", layer(k, stream, biases[k]))  # (..., h) states -> (..., 2h)
            stream = net.add(f"residual.{k}", stream, out) if config["residual"] else out
            skips.append((f"skips.{k}", out))
        return head(net, net.linear_sum("skips", skips) if config["skip"] else stream)

    def input_to_state(self, net: Network, k: int, stream: Fixed, bias: Fixed | None, conv=None) -> Fixed:
        """Layer k's input-to-state map (a map, or with ``conv`` one pixel), plus its conditioning bias."""
        name = f"lstm_layers.{k}.input_to_state"
        gates = net.linear(name, stream) if conv is None else conv(name, stream)
        return gates if bias is None else net.add(f"lstm_layers.{k}.conditioned", gates, bias)

    def logits(self, x, y=None, context: Fixed | None = None, net: Network | None = None):
        net = self.net if net is None else net
        u = Fixed(self.to_inputs(x), 0)  # (B, H, W, C)
        biases = conditioning(net, self.config, y, context, self.config["layers"])

        def layer(k, stream, bias):
            return self.layer_map(net, k, stream, bias)

        return self.unfold(self.body(net, FullMap(net).conv, layer, u, biases).values)  # (B, H, W, C, K)

    def stepper(self, batch, y=None, context: Fixed | None = None):
        from .recurrent_steps import FastRecurrentStepper  # it builds on this module
        return FastRecurrentStepper(self, batch, y, context)

    def reference_stepper(self, batch, y=None, context: Fixed | None = None):
        """The step-wise pass written once with the full pass (:meth:`body`): what the fast one is tested against."""
        return RecurrentStepper(self, batch, y, context)

    def layer_map(self, net: Network, k: int, stream: Fixed, bias: Fixed | None) -> Fixed:  # pragma: no cover
        raise NotImplementedError

    def layer_steps(self, k: int, batch: int, caches: PixelCaches):  # pragma: no cover - abstract
        raise NotImplementedError

    def fast_layer(self, k: int, batch: int, in_exp: int, bias_exp: int | None, rows):  # pragma: no cover
        """LSTM layer k at one pixel for :class:`.recurrent_steps.FastRecurrentStepper`: ``input_at(i, j)`` (where
        the stream at the pixel goes), ``at(i, j, bias, out, consume)`` and ``end_row(i)``; ``rows``: what
        :meth:`fast_rows` gave."""
        raise NotImplementedError

    def fast_rows(self, batch: int, biases: list[Fixed | None]):
        """What the layers of a fast stepper share to finish a row together, given the layers' conditioning maps
        (``ready()`` once every layer is made, then ``end_row(i)``), or None: each layer then finishes its own rows."""
        return None

    def step_bytes(self) -> int:
        _, height, width = self.image_shape
        hidden = self.config["hidden"]
        return super().step_bytes() + 8 * 2 * self.config["layers"] * self.layer_step_values(width, hidden)

    def layer_step_values(self, width: int, hidden: int) -> int:  # pragma: no cover - abstract
        """The values one LSTM layer of the decoder's stepper (:mod:`.recurrent_steps`) holds per image."""
        raise NotImplementedError


class RecurrentStepper:
    """:class:`IntegerRecurrent` one pixel at a time: the input layer and the input-to-state maps read caches of
    their inputs, each LSTM layer keeps its states (``layer_steps``)."""

    def __init__(self, model: IntegerRecurrent, batch: int, y, context: Fixed | None):
        self.model = model
        _, height, width = model.image_shape
        self.biases = conditioning(model.net, model.config, y, context, model.config["layers"])  # maps, once
        self.caches = PixelCaches(model.net, batch, height, width, model.device)
        self.layers = [model.layer_steps(k, batch, self.caches) for k in range(model.config["layers"])]

    def logits(self, x, i, j):
        model = self.model
        u = Fixed(model.to_inputs(x[:, :, i, j]), 0)  # (B, C): the pixel as its channels are known so far
        biases = [at_pixel(b, i, j) for b in self.biases]

        def layer(k, stream, bias):
            return self.layers[k].at(stream, i, j, bias)

        return model.unfold(model.body(model.net, self.caches.at(i, j).conv, layer, u, biases).values)

    def commit(self, x, i, j):
        self.caches.store("input", self.model.to_inputs(x[:, :, i, j]), i, j)

    def end_row(self, x, i):
        for layer in self.layers:
            layer.end_row(i)
