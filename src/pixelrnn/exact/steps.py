"""Prepared pieces of an integer network at one pixel, for a decoder's stepper: the operations of :mod:`.ops` with
their lookups, checks and buffers made once, not at every value.

The step-wise pass of :mod:`.passes` runs any family's network as written for the full pass, so both give the same
integers by construction; it pays for that generality at every value the decoder visits. A family's fast stepper
(:class:`.pixelcnn.FastPixelCNNStepper`, :class:`.recurrent_steps.FastRecurrentStepper`) runs the same operations
through these pieces instead: the same prepared weights, the same exact sums in another order, the same roundings,
so the same integers, which tests check against the reference stepper value by value.
"""

from __future__ import annotations

import torch

from .arith import DTYPE, pow2
from .ops import Add, Linear, damaged


def prepared_linear(net, name: str, in_exp: int, relu: bool) -> Linear:
    """The finished :class:`.ops.Linear` ``name`` of ``net``, checked to take inputs of exponent ``in_exp`` (and
    to end in a ReLU or not, as ``relu`` says), its weights prepared: a damaged model is refused here, once."""
    op = net.op(name)
    if not isinstance(op, Linear) or op.in_exp != in_exp or op.relu != relu or op.out_exp is None:
        raise damaged(net.prefix + name, f"does not take inputs of exponent {in_exp}")
    if op.prepared is None:
        op.prepare()
    return op


def base_plus_products(out: torch.Tensor, base: torch.Tensor, products) -> torch.Tensor:
    """``out`` = ``base`` (broadcast) + the sum of ``a @ w`` over the pairs ``products``: the first product writes
    ``out`` with the base, the others accumulate into it (no separate pass for the base)."""
    first = True
    for a, w in products:
        if first:
            torch.addmm(base, a, w, out=out)
            first = False
        else:
            out.addmm_(a, w)
    if first:  # no products
        out.copy_(base.expand_as(out))
    return out


class RowWindows:
    """One k x k integer layer at the pixels of the row being decoded, from a cache of the rows it reads.

    :class:`.passes.PixelCaches` for a single layer, made for speed: the cache holds only the k//2 rows above and the
    row being decoded, (B, top + 1, columns * features), shifted up by one row when a row starts; every view of it
    (a pixel's input slot, its own row's window, the windows of the rows above) is made once, here. When a row
    starts, the taps of its rows above are summed for every pixel of the row at once, bias included, into one
    buffer; a pixel then adds only its own row's taps. The same prepared weights and the same exact sums as the
    reference pass, so the same integers.
    """

    def __init__(self, name: str, op: Linear, batch: int, width: int, device: torch.device):
        top, bottom, left, right = op.padding
        if bottom:
            raise ValueError(f"{name} reads rows below its pixel; it cannot run one pixel at a time")
        self.op, self.top, self.width, self.batch = op, top, width, batch
        features = op.in_features
        self.cache = torch.zeros(batch, top + 1, (width + left + right) * features, dtype=DTYPE, device=device)
        own = self.cache[:, top]
        self.slots = [own[:, (j + left) * features:(j + left + 1) * features] for j in range(width)]
        self.above, self.own_weight, self.windows, self.reads_own_pixel = [], None, [], False
        for dy, lo, hi, weight in op.rows():
            if dy < 0:  # the row dy above: each pixel's run of taps, for all pixels of the row (an unfolded view)
                row = self.cache[:, top + dy]
                windows = row.unfold(1, (hi - lo + 1) * features, features)[:, left + lo:left + lo + width]
                self.above.append((windows.transpose(0, 1), weight))  # (W, B, taps of the row)
            else:
                self.own_weight, self.reads_own_pixel = weight, hi >= 0
                self.windows = [own[:, (j + left + lo) * features:(j + left + hi + 1) * features]
                                for j in range(width)]
        self.bias = op.prepared[1]
        self.partial = torch.empty(width * batch, op.weight.shape[1], dtype=DTYPE, device=device)
        self.partials = self.partial.view(width, batch, -1).unbind()  # W x (B, out)
        self.row = -1

    def start_row(self, i: int) -> None:
        """Shift the cache up to row i, and sum the taps of its rows above for each of its pixels."""
        if i == self.row:
            return
        if i != self.row + 1:
            raise ValueError(f"rows are decoded in order: row {i} cannot follow row {self.row}")
        if i > 0:  # row i - 1 becomes the last row above; one row at a time, upward, so no copy overlaps itself
            for r in range(self.top):
                self.cache[:, r].copy_(self.cache[:, r + 1])
        # Each row above as (W B, taps of the row): a copy
        base_plus_products(self.partial, self.bias, ((windows.reshape(self.width * self.batch, -1), weight)
                                                     for windows, weight in self.above))
        self.row = i

    def slot(self, i: int, j: int) -> torch.Tensor:
        """Where pixel (i, j)'s input features (B, in) go: a view of the cache, written by the caller."""
        self.start_row(i)
        return self.slots[j]

    def finish(self, j: int, out: torch.Tensor, consume: bool) -> torch.Tensor:
        """The layer's rescaled, clamped outputs at pixel j of the row into ``out`` (B, out), once its input is
        stored. ``consume``: the pixel is not evaluated again, so its part of the row's sums takes its own row's
        taps in place (a pixel of several colours is evaluated once per colour, each time from the same sums)."""
        partial = self.partials[j]
        if self.own_weight is not None:
            partial = partial.addmm_(self.windows[j], self.own_weight) if consume else \
                torch.addmm(partial, self.windows[j], self.own_weight)
        return torch.floor(partial, out=out).clamp_(0 if self.op.relu else -self.op.bound, self.op.bound)


class AddAt:
    """A prepared :class:`.ops.Add` of two terms at one pixel, in place into the first: the exact sum at the finest
    exponent, rescaled once, folded into two scalings by powers of two (exact, so the integers of ``Add``)."""

    def __init__(self, net, name: str, exps: tuple[int, int]):
        op = net.op(name)
        if not isinstance(op, Add) or tuple(op.in_exps) != exps:
            raise damaged(net.prefix + name, f"does not take exponents {exps}")
        self.out_exp = op.out_exp
        top = max(exps)
        shift = top - op.out_exp
        self.first, self.second = pow2(top - exps[0] - shift), pow2(top - exps[1] - shift)
        self.half = 0.5 if shift > 0 else 0.0
        # Without a shift every scaled term is an integer (its factor a power of two of at least 1): no floor
        self.floor = shift > 0
        # Terms of one exponent, shifted: the integer sum, then floor((sum + 2**(shift - 1)) / 2**shift) in one
        # floor division by a power of two (exact)
        self.divide = (float(2 ** (shift - 1)), float(2 ** shift)) if shift > 0 and exps[0] == exps[1] else None
        self.bound = op.bound

    def __call__(self, total: torch.Tensor, term: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The sum into ``out``, or into ``total`` in place."""
        if self.divide is not None:
            half, divisor = self.divide
            total = torch.add(total, term, out=total if out is None else out).add_(half)
            return total.div_(divisor, rounding_mode="floor").clamp_(-self.bound, self.bound)
        if out is not None and self.first == 1.0:
            total = torch.add(total, term, alpha=self.second, out=out)
        else:
            if out is not None:
                total = torch.mul(total, self.first, out=out)
            elif self.first != 1.0:
                total.mul_(self.first)
            total.add_(term, alpha=self.second)
        if self.half:
            total.add_(self.half)
        if self.floor:
            total.floor_()
        return total.clamp_(-self.bound, self.bound)


class OneByOne:
    """A prepared 1 x 1 :class:`.ops.Linear` at one pixel, its bias a last row of its weight: the input buffer
    carries a constant 1 after its features, so that one product (no copy of the bias) gives the sums."""

    def __init__(self, op: Linear):
        self.op, self.weight = op, bias_below(*op.prepared)
        self.lower = 0 if op.relu else -op.bound

    def __call__(self, features_and_one: torch.Tensor, out: torch.Tensor, clamp_out: torch.Tensor | None = None):
        """The rescaled, clamped outputs (B, out) into ``out`` (through ``out`` into ``clamp_out``, if given)."""
        torch.mm(features_and_one, self.weight, out=out).floor_()
        if clamp_out is None:
            return out.clamp_(self.lower, self.op.bound)
        return torch.clamp(out, self.lower, self.op.bound, out=clamp_out)


def conditioning_sum(net, name: str, exp: int, bias_exp: int | None) -> tuple[AddAt | None, int]:
    """The sum ``name`` of a layer's values (exponent ``exp``) and its conditioning bias, if it has one: (the
    prepared sum or None, the exponent after it)."""
    if bias_exp is None:
        return None, exp
    conditioned = AddAt(net, name, (exp, bias_exp))
    return conditioned, conditioned.out_exp


def bias_below(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A prepared weight (in, out) with its bias as a last row (in + 1, out), for inputs that end in a 1
    (:func:`with_one`): one product gives the sums, bias included."""
    return torch.cat([weight, bias[None]])


def with_one(batch: int, features: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A buffer (B, features + 1) whose last column is 1 (it carries a layer's bias), and its features' view."""
    buffer = torch.ones(batch, features + 1, dtype=DTYPE, device=device)
    return buffer, buffer[:, :features]


class HeadAt:
    """The end of a stack at one pixel: the sum of the skip connections (if the model has them) of the layers'
    outputs, which lie side by side in one buffer beside a 1 (:func:`with_one`), and the output head of
    :func:`.layers.head` (ReLU, 1 x 1, ReLU, 1 x 1) on it, or on the stream alone."""

    def __init__(self, net, skip: bool, out_exps: list[int], stream_exp: int, batch: int, features: int,
                 device: torch.device):
        self.skip, exp = skip, stream_exp
        if skip:
            skips = net.op("skips")
            if list(skips.in_exps) != out_exps:
                raise damaged(net.prefix + "skips", f"expects exponents {skips.in_exps}")
            if skips.prepared is None:
                skips.prepare()
            self.weight, self.bound, exp = bias_below(skips.prepared, skips.prepared_bias), skips.bound, skips.out_exp
            self.skip_sum = torch.empty(batch, features, dtype=DTYPE, device=device)
        self.relu_features, self.relu_features_only = with_one(batch, features, device)
        self.hidden = OneByOne(prepared_linear(net, "head.hidden", exp, True))
        self.hidden_out, self.hidden_features = with_one(batch, self.hidden.weight.shape[1], device)
        self.logits = OneByOne(prepared_linear(net, "head.logits", self.hidden.op.out_exp, False))
        self.logit_values = torch.empty(batch, self.logits.weight.shape[1], dtype=DTYPE, device=device)

    def __call__(self, outs: torch.Tensor, stream: torch.Tensor) -> torch.Tensor:
        """The integer logits (B, C*K) from the layers' outputs and a 1 (B, L * features + 1) or the stream (B,
        features): a buffer, until the next call."""
        if self.skip:
            features = torch.mm(outs, self.weight, out=self.skip_sum).floor_().clamp_(-self.bound, self.bound)
        else:
            features = stream
        torch.clamp_min(features, 0, out=self.relu_features_only)
        self.hidden(self.relu_features, self.hidden_features)
        return self.logits(self.hidden_out, self.logit_values)
