"""The operations of an integer network: each one exact, with the proof of its exactness beside it.

- :class:`Linear`: a convolution (masked or not) or a 1 x 1 map as integer taps. Its output at a pixel p is the
  exact accumulator ``acc = sum_t x[p + tap_t] @ W_t + b`` (exponent ``in_exp + w_exp``), rescaled to ``out_exp``
  by round half up and clamped (to [0, bound] when a ReLU follows, else [-bound, bound]). A full map gathers the
  taps of every pixel (slicing: copies) and makes one matrix product; a step-wise pass reads one pixel's taps from a
  cache. The products are exact, so both give the same integers.
- :class:`LinearSum`: several 1 x 1 maps of different inputs summed before one rescaling (the skip connections
  into the output head): every term is aligned to the finest accumulator exponent, exactly.
- :class:`Add`: a sum of fixed-point tensors (residual connections, conditioning biases), exact at the finest
  exponent of its terms, then rescaled once.
- :class:`Embedding`: a table of integers per class (the class-conditional biases).
- :class:`Gates`, :class:`Initial`, :class:`Table`: an LSTM layer's gate pre-activations, its initial states, and
  the sigmoid and tanh tables its cells read (:mod:`.recurrent`).

Running an operation: the rescaling by 2**-shift is folded into the weights beforehand (``W * 2**-shift`` and
``(b + 2**(shift-1)) * 2**-shift``: powers of two, exact), so that one matrix product gives ``(acc + 2**(shift-1))
* 2**-shift`` directly and a floor and a clamp finish it. This is exact for the same reason as the integer product:
every term and every partial sum is an integer times 2**-shift whose integer stays below 2**53 (the proof of
:mod:`.arith`, made when the operation is built and again when it is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CheckpointError
from .arith import DTYPE, check_exact, pow2, worst_case


# Below this many input features a tap's product is too thin to beat gathering every tap into one product.
MIN_FEATURES_PER_TAP_PRODUCT = 16


def _finish(y: torch.Tensor, relu: bool, bound: int) -> torch.Tensor:
    """The end of every rescaling: floor (the rounding offset is already in), then clamp."""
    return y.floor_().clamp_(0 if relu else -bound, bound)


def _half(shift: int) -> int:
    return 2 ** (shift - 1) if shift > 0 else 0


def _stored(t: torch.Tensor) -> torch.Tensor:
    """Integers in the narrowest of int16, int32 and int64 that holds them (the file's size; values unchanged)."""
    top = int(t.abs().max()) if t.numel() else 0
    dtype = torch.int16 if top < 2**15 else torch.int32 if top < 2**31 else torch.int64
    return t.to(dtype)


@dataclass
class Linear:
    """Integer taps of a convolution: weight (taps * in, out), rows ordered (tap, input feature)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    taps: tuple[tuple[int, int], ...]  # (dy, dx) of each tap, relative to the output pixel
    in_exp: int
    w_exp: int
    out_exp: int | None  # None while calibrating
    bound: int  # outputs are clamped to [-bound, bound], or [0, bound] with relu
    in_bound: int  # the largest |input|, for the exactness proof
    relu: bool = False  # a ReLU follows: it is the clamp's lower end
    kind: str = field(default="linear", init=False)

    def __post_init__(self):
        self.prepared: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def acc_exp(self) -> int:
        return self.in_exp + self.w_exp

    @property
    def shift(self) -> int:
        return self.acc_exp - self.out_exp

    @property
    def in_features(self) -> int:
        return self.weight.shape[0] // len(self.taps)

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): the zero rows and columns around a map that the taps read."""
        dys, dxs = [t[0] for t in self.taps], [t[1] for t in self.taps]
        return max(0, -min(dys)), max(0, max(dys)), max(0, -min(dxs)), max(0, max(dxs))

    def columns(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, in) -> (B, H, W, taps * in): every pixel's taps side by side (a 1 x 1 map reads x itself)."""
        if self.taps == ((0, 0),):
            return x
        batch, height, width, features = x.shape
        cols = x.new_empty(batch, height, width, len(self.taps) * features)
        for t, (dy, dx) in enumerate(self.taps):  # each tap: a shifted copy of x, zeros where it leaves the map
            block = cols[..., t * features:(t + 1) * features]
            r0, r1, c0, c1 = max(0, -dy), height - max(0, dy), max(0, -dx), width - max(0, dx)
            if r0 >= r1 or c0 >= c1:
                block.zero_()
                continue
            block[:, r0:r1, c0:c1] = x[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx]
            block[:, :r0].zero_()
            block[:, r1:].zero_()
            block[:, r0:r1, :c0].zero_()
            block[:, r0:r1, c1:].zero_()
        return cols

    def map(self, x: torch.Tensor) -> torch.Tensor:
        """The rescaled, clamped outputs (B, H, W, out) of a whole map ``x`` (B, H, W, in).

        A layer of many input features skips the gathered copy of :meth:`columns`: ``x`` is zero-padded once into
        its padded frame (B, H + top + bottom, W + left + right, in), and in that frame, flattened to rows, the
        taps of every pixel lie at fixed row offsets (dy * padded width + dx). Each tap's product then reads a
        contiguous slice of the frame as it is, and the outputs of the pixels that lie in the frame's margins are
        dropped. Every output sums the same exact integer terms as from :meth:`columns` (the margins read zeros),
        so the two are equal; a layer of few input features (the image's channels) gathers, where one product of
        many taps is faster than many thin ones.
        """
        if len(self.taps) == 1 or self.in_features < MIN_FEATURES_PER_TAP_PRODUCT:
            return self(self.columns(x))
        if self.prepared is None:
            self.prepare()
        weight, bias = self.prepared
        batch, height, width, features = x.shape
        top, bottom, left, right = self.padding
        frame_h, frame_w = height + top + bottom, width + left + right
        frame = torch.nn.functional.pad(x, (0, 0, left, right, top, bottom)).view(-1, features)
        # The rows of the frame that hold an output pixel, first to last: every tap's row stays inside the frame.
        first = top * frame_w + left
        last = (batch - 1) * frame_h * frame_w + (top + height - 1) * frame_w + left + width - 1
        out = x.new_empty(batch * frame_h * frame_w, weight.shape[1])
        live = out[first:last + 1]
        for t, (dy, dx) in enumerate(self.taps):
            start = first + dy * frame_w + dx
            rows = frame[start:start + len(live)]
            w = weight[t * features:(t + 1) * features]
            if t == 0:
                torch.addmm(bias, rows, w, out=live)
            else:
                live.addmm_(rows, w)
        inside = out.view(batch, frame_h, frame_w, -1)[:, top:top + height, left:left + width]
        return torch.floor(inside).clamp_(0 if self.relu else -self.bound, self.bound)

    def accumulate(self, cols: torch.Tensor) -> torch.Tensor:
        """The exact integer accumulators (..., out) (calibration only; running uses :meth:`__call__`)."""
        flat = cols.reshape(-1, cols.shape[-1])
        acc = flat @ self.weight if self.bias is None else torch.addmm(self.bias, flat, self.weight)
        return acc.view(*cols.shape[:-1], acc.shape[-1])

    def prepare(self) -> None:
        """The weights with the rescaling folded in (see the module docstring)."""
        scale = pow2(-self.shift)
        bias = self.bias if self.bias is not None else torch.zeros(self.weight.shape[1], dtype=DTYPE,
                                                                   device=self.weight.device)
        self.prepared = (self.weight * scale, (bias + _half(self.shift)) * scale)

    def finish(self, acc: torch.Tensor) -> torch.Tensor:
        """The outputs from exact accumulators: what :meth:`__call__` computes with the rescaling folded in (both are
        exact, so they are equal)."""
        return _finish(acc.add_(_half(self.shift)).mul_(pow2(-self.shift)), self.relu, self.bound)

    def finish_prepared(self, total: torch.Tensor) -> torch.Tensor:
        """The outputs from the products with the prepared weights (the step-wise pass sums them row by row)."""
        return _finish(total, self.relu, self.bound)

    def __call__(self, cols: torch.Tensor) -> torch.Tensor:
        """The rescaled, clamped outputs (..., out) of gathered columns (..., taps * in)."""
        if self.prepared is None:
            self.prepare()
        weight, bias = self.prepared
        if cols.dim() == 2:  # one pixel's features (the step-wise pass): no reshaping
            return _finish(torch.addmm(bias, cols, weight), self.relu, self.bound)
        flat = cols.reshape(-1, cols.shape[-1])
        return _finish(torch.addmm(bias, flat, weight), self.relu, self.bound).view(*cols.shape[:-1], -1)

    def rows(self) -> list[tuple[int, int, int, torch.Tensor]]:
        """The taps grouped by row, for the step-wise pass: (dy, first dx, last dx, prepared weight of that run of
        columns, zero where a column has no tap). Each row of a cache then feeds one product, read as a view."""
        if self.prepared is None:
            self.prepare()
        weight, features = self.prepared[0], self.in_features
        out = []
        for dy in sorted({t[0] for t in self.taps}):
            dxs = [t[1] for t in self.taps if t[0] == dy]
            lo, hi = min(dxs), max(dxs)
            rows = weight.new_zeros((hi - lo + 1) * features, weight.shape[1])
            for k, (ty, tx) in enumerate(self.taps):
                if ty == dy:  # zero rows add nothing, exactly: the sums are those of the full pass
                    rows[(tx - lo) * features:(tx - lo + 1) * features] = weight[k * features:(k + 1) * features]
            out.append((dy, lo, hi, rows))
        return out

    def check(self, name: str) -> None:
        """The exactness proof of this layer (see :mod:`.arith`): refuses one that could leave the exact range."""
        worst = worst_case(self.weight, self.in_bound, self.bias)
        check_exact(name, worst + (0 if self.out_exp is None else _half(self.shift)))

    def to(self, device) -> Linear:
        op = Linear(self.weight.to(device), None if self.bias is None else self.bias.to(device), self.taps,
                    self.in_exp, self.w_exp, self.out_exp, self.bound, self.in_bound, self.relu)
        if self.out_exp is not None:
            op.prepare()
        return op

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "taps": [list(t) for t in self.taps], "in_exp": self.in_exp, "w_exp": self.w_exp,
                "out_exp": self.out_exp, "bound": self.bound, "in_bound": self.in_bound, "relu": self.relu}

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"weight": _stored(self.weight)}
        if self.bias is not None:
            out["bias"] = _stored(self.bias)
        return out


@dataclass
class LinearSum:
    """A sum of 1 x 1 maps of several inputs, ``sum_k x_k @ W_k + b_k``, rescaled once: term k has input exponent
    ``in_exps[k]`` and weight exponent ``w_exps[k]``; all are aligned to the finest accumulator exponent."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor | None]
    in_exps: list[int]
    w_exps: list[int]
    out_exp: int | None
    bound: int
    in_bound: int
    kind: str = field(default="linear_sum", init=False)

    def __post_init__(self):
        self.prepared: torch.Tensor | None = None
        self.prepared_bias: torch.Tensor | None = None

    @property
    def acc_exp(self) -> int:
        return max(i + w for i, w in zip(self.in_exps, self.w_exps))

    def _aligned_bias(self) -> torch.Tensor:
        total = torch.zeros(self.weights[0].shape[1], dtype=DTYPE, device=self.weights[0].device)
        for b, i, w in zip(self.biases, self.in_exps, self.w_exps):
            if b is not None:
                total = total + b * pow2(self.acc_exp - i - w)
        return total

    def prepare(self) -> None:
        """One weight for all terms, stacked in their order, with each term's alignment and the rescaling folded
        in (powers of two: exact)."""
        shift = self.acc_exp - self.out_exp
        self.prepared = torch.cat([w * pow2(self.out_exp - i - t)
                                   for w, i, t in zip(self.weights, self.in_exps, self.w_exps)])
        self.prepared_bias = (self._aligned_bias() + _half(shift)) * pow2(-shift)

    def __call__(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """The rescaled, clamped sum (..., out) of the terms' inputs ``xs`` (each (..., in_k)).

        One product of the joined inputs for a few rows (a step: fewer calls), one accumulating product per term for
        a whole map (no joined copy); the sums are exact, so both give the same integers.
        """
        if self.prepared is None:
            self.prepare()
        shape = xs[0].shape[:-1]
        flats = [x.reshape(-1, x.shape[-1]) for x in xs]
        if flats[0].shape[0] <= 1024:
            total = torch.addmm(self.prepared_bias, torch.cat(flats, dim=-1), self.prepared)
        else:
            start = 0
            total = None
            for flat in flats:
                weight = self.prepared[start:start + flat.shape[-1]]
                start += flat.shape[-1]
                total = torch.addmm(self.prepared_bias, flat, weight) if total is None else total.addmm_(flat, weight)
        return _finish(total, False, self.bound).view(*shape, -1)

    def check(self, name: str) -> None:
        top = self.acc_exp
        worst = sum(worst_case(w, self.in_bound) << (top - i - t) for w, i, t in zip(self.weights, self.in_exps,
                                                                                    self.w_exps))
        bias = self._aligned_bias()
        worst += int(bias.abs().max()) if bias.numel() else 0
        check_exact(name, worst + (0 if self.out_exp is None else _half(top - self.out_exp)))

    def to(self, device) -> LinearSum:
        op = LinearSum([w.to(device) for w in self.weights], [None if b is None else b.to(device)
                                                             for b in self.biases],
                       self.in_exps, self.w_exps, self.out_exp, self.bound, self.in_bound)
        if self.out_exp is not None:
            op.prepare()
        return op

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "in_exps": list(self.in_exps), "w_exps": list(self.w_exps),
                "biases": [b is not None for b in self.biases], "out_exp": self.out_exp, "bound": self.bound,
                "in_bound": self.in_bound}

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"weight{k}": _stored(w) for k, w in enumerate(self.weights)}
        out.update({f"bias{k}": _stored(b) for k, b in enumerate(self.biases) if b is not None})
        return out


@dataclass
class Add:
    """A sum of fixed-point tensors of exponents ``in_exps``, rescaled once to ``out_exp``."""

    in_exps: tuple[int, ...]
    out_exp: int | None
    bound: int
    in_bound: int
    kind: str = field(default="add", init=False)

    def __call__(self, qs) -> torch.Tensor:
        """floor(sum_j x_j * 2**(out_exp - e_j) + offset): each term and partial sum exact (see the proof)."""
        top = max(self.in_exps)
        shift = top - self.out_exp
        # The exact integer sum at the finest exponent first (one pass for two terms), then the rescaling.
        first, *rest = sorted(qs, key=lambda q: -q.values.numel())  # the full-sized term leads: sums broadcast
        total = first.values * pow2(top - first.exp) if rest == [] or first.exp != top else None
        for q in rest:
            if total is None:
                total = torch.add(first.values, q.values, alpha=pow2(top - q.exp))
            else:
                total.add_(q.values, alpha=pow2(top - q.exp))
        if shift > 0:
            total.add_(pow2(shift - 1))
        return _finish(total.mul_(pow2(-shift)) if shift else total, False, self.bound)

    def check(self, name: str) -> None:
        top = max(self.in_exps)
        worst = sum(self.in_bound << (top - e) for e in self.in_exps)
        check_exact(name, worst + (0 if self.out_exp is None else _half(top - self.out_exp)))

    def to(self, device) -> Add:
        return self

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "in_exps": list(self.in_exps), "out_exp": self.out_exp, "bound": self.bound,
                "in_bound": self.in_bound}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}


@dataclass
class Embedding:
    """Integer vectors per class, of exponent ``exp``."""

    table: torch.Tensor  # (classes, width)
    exp: int
    kind: str = field(default="embedding", init=False)

    def check(self, name: str) -> None:
        check_exact(name, int(self.table.abs().max()) if self.table.numel() else 0)

    def to(self, device) -> Embedding:
        return Embedding(self.table.to(device), self.exp)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "exp": self.exp}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"table": _stored(self.table)}


@dataclass
class Gates:
    """An LSTM's gate pre-activations: the state-to-state taps ``x @ W`` (x: h states of exponent ``in_exp``) plus the
    input-to-state maps ``g`` (exponent ``add_exp``), aligned exactly and rescaled once to ``out_exp``, the input
    exponent of the sigmoid and tanh tables."""

    weight: torch.Tensor  # (taps * h, 4h)
    in_exp: int
    w_exp: int
    add_exp: int
    out_exp: int
    bound: int
    in_bound: int  # the largest |state|
    add_bound: int  # the largest |input-to-state value|
    kind: str = field(default="gates", init=False)

    def __post_init__(self):
        self.prepared: tuple[torch.Tensor, float, float] | None = None
        self.joined: Any = None  # (cell tables, .recurrent.JoinedGates): the full pass's joined clamp, made once

    @property
    def acc_exp(self) -> int:
        return max(self.in_exp + self.w_exp, self.add_exp)

    def prepare(self) -> None:
        shift = self.acc_exp - self.out_exp
        self.prepared = (self.weight * pow2(self.out_exp - self.in_exp - self.w_exp), pow2(self.out_exp - self.add_exp),
                         0.5 if shift > 0 else 0.0)

    def __call__(self, cols: torch.Tensor, added: torch.Tensor) -> torch.Tensor:
        """Pre-activations (..., 4h) of state taps ``cols`` (..., taps * h) and input-to-state values (..., 4h)."""
        if self.prepared is None:
            self.prepare()
        weight, factor, half = self.prepared
        base = added * factor
        if half:
            base.add_(half)
        flat = cols.reshape(-1, cols.shape[-1])
        out = torch.addmm(base.reshape(-1, base.shape[-1]), flat, weight)
        return _finish(out, False, self.bound).view(*added.shape)

    def worst_case(self) -> int:
        """The largest |accumulator| the gates can reach, the rounding's half included, as an exact int."""
        top = self.acc_exp
        worst = (worst_case(self.weight, self.in_bound) << (top - self.in_exp - self.w_exp))
        worst += self.add_bound << (top - self.add_exp)
        return worst + _half(top - self.out_exp)

    def check(self, name: str) -> None:
        check_exact(name, self.worst_case())

    def to(self, device) -> Gates:
        return Gates(self.weight.to(device), self.in_exp, self.w_exp, self.add_exp, self.out_exp, self.bound,
                     self.in_bound, self.add_bound)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "in_exp": self.in_exp, "w_exp": self.w_exp, "add_exp": self.add_exp,
                "out_exp": self.out_exp, "bound": self.bound, "in_bound": self.in_bound, "add_bound": self.add_bound}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": _stored(self.weight)}


@dataclass
class Initial:
    """An LSTM layer's initial states, per direction: h (exponent ``h_exp``) and c (exponent ``c_exp``), (dirs, h)."""

    hidden: torch.Tensor
    cell: torch.Tensor
    h_exp: int
    c_exp: int
    kind: str = field(default="initial", init=False)

    def check(self, name: str) -> None:
        if self.hidden.shape != self.cell.shape or self.hidden.dim() != 2:
            raise ValueError("hidden and cell states disagree")
        check_exact(name, int(max(self.hidden.abs().max(), self.cell.abs().max())) if self.hidden.numel() else 0)

    def to(self, device) -> Initial:
        return Initial(self.hidden.to(device), self.cell.to(device), self.h_exp, self.c_exp)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "h_exp": self.h_exp, "c_exp": self.c_exp}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"hidden": _stored(self.hidden), "cell": _stored(self.cell)}


@dataclass
class Table:
    """A nonlinearity's integer table (:mod:`.tables`), stored with the model it serves; ``function`` is "sigmoid"
    or "tanh", at input exponent ``in_exp`` with ``out_bits`` of output."""

    values: torch.Tensor
    function: str
    in_exp: int
    out_bits: int
    kind: str = field(default="table", init=False)

    def check(self, name: str) -> None:
        if self.function not in ("sigmoid", "tanh") or self.values.dim() != 1 or len(self.values) % 2 != 1:
            raise ValueError(f"not a table of sigmoid or tanh: {self.function}, {tuple(self.values.shape)}")
        check_exact(name, int(self.values.abs().max()))

    def __post_init__(self):
        self.floats: torch.Tensor | None = None
        self.joined: Any = None  # the LSTM cells' joined tables (:func:`.recurrent.cell_tables`), made once

    def as_float(self) -> torch.Tensor:
        """The entries as float64 (exact: integers below 2**16), made once."""
        if self.floats is None:
            self.floats = self.values.to(torch.float64)
        return self.floats

    def to(self, device) -> Table:
        return Table(self.values.to(device), self.function, self.in_exp, self.out_bits)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "function": self.function, "in_exp": self.in_exp, "out_bits": self.out_bits}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"values": _stored(self.values)}


Op = Linear | LinearSum | Add | Embedding | Gates | Initial | Table


def _linear_from(meta, tensors) -> Linear:
    op = Linear(tensors["weight"].to(DTYPE), tensors["bias"].to(DTYPE) if "bias" in tensors else None,
                tuple((int(a), int(b)) for a, b in meta["taps"]), int(meta["in_exp"]), int(meta["w_exp"]),
                int(meta["out_exp"]), int(meta["bound"]), int(meta["in_bound"]), bool(meta["relu"]))
    if not op.taps or op.weight.dim() != 2 or op.weight.shape[0] % len(op.taps):
        raise ValueError("taps and weight disagree")
    if op.bias is not None and op.bias.shape != op.weight.shape[1:]:
        raise ValueError("bias and weight disagree")
    return op


def _sum_from(meta, tensors) -> LinearSum:
    count = len(meta["in_exps"])
    weights = [tensors[f"weight{k}"].to(DTYPE) for k in range(count)]
    biases = [tensors[f"bias{k}"].to(DTYPE) if has else None for k, has in enumerate(meta["biases"])]
    if len(biases) != count or len(meta["w_exps"]) != count or count == 0:
        raise ValueError("terms disagree")
    if any(w.dim() != 2 or w.shape[1] != weights[0].shape[1] for w in weights):
        raise ValueError("weights disagree")
    return LinearSum(weights, biases, [int(e) for e in meta["in_exps"]], [int(e) for e in meta["w_exps"]],
                     int(meta["out_exp"]), int(meta["bound"]), int(meta["in_bound"]))


def op_from_state(name: str, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Op:
    """Rebuild an operation from what :meth:`describe` and :meth:`tensors` stored; a CheckpointError if it is not
    one this version writes, or if it fails its exactness proof (a damaged or edited integer model)."""
    try:
        kind = meta["kind"]
        if kind == "linear":
            op = _linear_from(meta, tensors)
        elif kind == "linear_sum":
            op = _sum_from(meta, tensors)
        elif kind == "add":
            op = Add(tuple(int(e) for e in meta["in_exps"]), int(meta["out_exp"]), int(meta["bound"]),
                     int(meta["in_bound"]))
        elif kind == "embedding":
            op = Embedding(tensors["table"].to(DTYPE), int(meta["exp"]))
        elif kind == "gates":
            op = Gates(tensors["weight"].to(DTYPE), *(int(meta[k]) for k in (
                "in_exp", "w_exp", "add_exp", "out_exp", "bound", "in_bound", "add_bound")))
        elif kind == "initial":
            op = Initial(tensors["hidden"].to(DTYPE), tensors["cell"].to(DTYPE), int(meta["h_exp"]),
                         int(meta["c_exp"]))
        elif kind == "table":
            op = Table(tensors["values"].to(torch.int64), str(meta["function"]), int(meta["in_exp"]),
                       int(meta["out_bits"]))
        else:
            raise ValueError(f"unknown kind {kind!r}")
        op.check(name)
    except CheckpointError:
        raise
    except Exception as e:  # any malformed entry means the same to the user: the file is damaged
        raise CheckpointError(f"the integer model's operation {name} is damaged ({type(e).__name__}: {e}); delete "
                              "the exact.safetensors file to compute it again") from None
    return op


def damaged(name: str, what: str) -> CheckpointError:
    return CheckpointError(f"the integer model's operation {name} {what}; it is damaged or of another model; delete "
                           "its exact.safetensors file to compute it again")
