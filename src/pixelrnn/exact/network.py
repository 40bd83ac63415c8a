"""The network that runs an integer model's operations (:mod:`.ops`) by name, and builds them when calibrating.

An integer model is a handful of operations, each named after the float module it comes from (``blocks.0.reduce``)
or after the sum it makes (``blocks.0.residual``). Quantisation (:mod:`.quantize`) builds them while it runs the
integer network itself on fixed calibration images: :class:`Network` with a ``builder`` creates each operation the
first time the network reaches it, from the float module of that name and the exponent of its input, and fixes its
output exponent from the exact accumulators it has just computed, layer by layer. Without a builder, the network
runs the operations it has.
"""

from __future__ import annotations

import torch

from .arith import Fixed
from .ops import Initial, Op, Table, damaged


class Network:
    """Integer operations by name, applied to fixed-point tensors; with a ``builder``, made on first use.

    ``prefix`` scopes the names: a model made of other models (the multi-scale model's levels) gives each its own
    view (:meth:`scope`) of one dictionary of operations, as a float module's children have prefixed names.
    """

    def __init__(self, ops: dict[str, Op] | None = None, builder=None, prefix: str = ""):
        self.ops: dict[str, Op] = {} if ops is None else ops
        self.builder = builder
        self.prefix = prefix

    def scope(self, prefix: str) -> Network:
        """The operations of the part named ``prefix`` (e.g. ``"conditional."``), on the same dictionary."""
        return Network(self.ops, self.builder, self.prefix + prefix)

    def op(self, name: str) -> Op:
        """The operation ``name`` (in this scope), which must exist."""
        if self.prefix + name not in self.ops:
            raise damaged(self.prefix + name, "is missing")
        return self.ops[self.prefix + name]

    def _op(self, name: str, make):
        op = self.ops.get(name)
        if op is None:
            if self.builder is None:
                raise damaged(name, "is missing")
            op = self.ops[name] = make()
        return op

    def linear(self, name: str, q: Fixed, columns: torch.Tensor | None = None, relu: bool = False,
               divisor: int = 1, in_bound: int | None = None, out_exp: int | None = None,
               bound: int | None = None) -> Fixed:
        """The operation ``name`` on ``q``: a map (B, H, W, in) or, with ``columns``, one pixel's gathered taps;
        ``relu``: the ReLU that follows it, done by its clamp.

        ``divisor``, ``in_bound``, ``out_exp`` and ``bound`` matter only when the operation is built: the float
        weights are divided by ``divisor`` (the image's scale), inputs are at most ``in_bound`` in magnitude, and a
        given ``out_exp``/``bound`` replaces the calibrated exponent and the activation range.
        """
        name = self.prefix + name
        op = self.ops.get(name)
        if op is None:
            op = self._op(name, lambda: self.builder.linear(name, q.exp, relu, divisor, in_bound, out_exp, bound))
        if q.exp != op.in_exp or op.relu != relu:
            raise damaged(name, f"expects exponent {op.in_exp}, not {q.exp}")
        if op.out_exp is None:  # calibrating: the exact accumulators fix the exponent and give the output
            acc = op.accumulate(op.columns(q.values) if columns is None else columns)
            self.builder.calibrate(name, op, acc)
            return Fixed(op.finish(acc), op.out_exp)
        if columns is not None or len(op.taps) == 1:  # gathered taps, or a 1 x 1 map: the product as it is
            return Fixed(op(q.values if columns is None else columns), op.out_exp)
        return Fixed(op.map(q.values), op.out_exp)

    def linear_sum(self, name: str, terms: list[tuple[str, Fixed]]) -> Fixed:
        """The operation ``name``: the sum of the 1 x 1 maps ``terms`` [(float module name, input)], rescaled once."""
        name = self.prefix + name
        terms = [(self.prefix + module, q) for module, q in terms]
        op = self._op(name, lambda: self.builder.linear_sum(name, terms))
        if [q.exp for _, q in terms] != op.in_exps:
            raise damaged(name, f"expects exponents {op.in_exps}")
        if op.out_exp is None:
            self.builder.calibrate_sum(name, op, terms)
        return Fixed(op([q.values for _, q in terms]), op.out_exp)

    def add(self, name: str, *qs: Fixed, in_bound: int | None = None) -> Fixed:
        """The sum of ``qs`` (broadcast), rescaled to the operation's exponent; ``in_bound`` (when it is built): the
        largest |term|, if not an activation's."""
        name = self.prefix + name
        op = self.ops.get(name) or self._op(name, lambda: self.builder.add(name, qs, in_bound))
        if tuple(q.exp for q in qs) != op.in_exps:
            raise damaged(name, f"expects exponents {op.in_exps}")
        if op.out_exp is None:
            self.builder.calibrate_add(name, op, qs)
        return Fixed(op(qs), op.out_exp)

    def gates(self, name: str, states: Fixed, added: Fixed, module: str, taps: int, direction: int = 0) -> Fixed:
        """The LSTM gate pre-activations of operation ``name``: state taps ``states`` (..., taps * h) through the
        float module ``module``'s state-to-state weights (direction ``direction``), plus ``added`` (..., 4h)."""
        name = self.prefix + name
        module = self.prefix + module
        op = self._op(name, lambda: self.builder.gates(name, states, added, module, taps, direction))
        if (states.exp, added.exp) != (op.in_exp, op.add_exp):
            raise damaged(name, f"expects exponents {op.in_exp} and {op.add_exp}")
        return Fixed(op(states.values, added.values), op.out_exp)

    def initial(self, name: str, module: str) -> Initial:
        """The initial states of the LSTM layer ``module``."""
        name = self.prefix + name
        module = self.prefix + module
        return self._op(name, lambda: self.builder.initial(name, module))

    def table_op(self, function: str) -> Table:
        """The integer table of ``function`` ("sigmoid" or "tanh") that the LSTM cells read (one for all scopes)."""
        return self._op(f"tables.{function}", lambda: self.builder.table(function))

    def table(self, function: str) -> torch.Tensor:
        """The integer table of ``function`` as float64."""
        return self.table_op(function).as_float()

    def embed(self, name: str, y: torch.Tensor) -> Fixed:
        """The class vectors (B, width) of labels ``y``."""
        name = self.prefix + name
        op = self._op(name, lambda: self.builder.embedding(name))
        return Fixed(op.table[y], op.exp)
