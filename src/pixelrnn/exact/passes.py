"""The two ways an integer network sees the image: all pixels at once (the encoder), or one pixel at a time (the
decoder). A family writes its network once, calling ``conv(name, q)`` for every layer that reads neighbouring
pixels; :class:`FullMap` and :class:`PixelCaches` give that ``conv``.

- :class:`FullMap`: ``q`` is a whole map (B, H, W, in), and every pixel's taps are gathered from it.
- :class:`PixelCaches`: ``q`` is one pixel's features (B, in); they are written into a zero-padded cache of that
  layer's input (channels last, as the float steppers keep theirs), and the pixel's taps are gathered from the
  cache. Masked layers read only pixels that come earlier, which the cache holds by then.

The products are exact (:mod:`.arith`), so both give the same integers at every pixel: not close, equal.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .arith import Fixed
from .network import Network
from .ops import Linear


class FullMap:
    """Every layer on the whole map."""

    def __init__(self, net: Network):
        self.net = net

    def conv(self, name: str, q: Fixed, **build) -> Fixed:
        return self.net.linear(name, q, **build)


class LayerCache(NamedTuple):
    """One layer's cache of its input at every pixel so far, and what reading it needs."""

    values: torch.Tensor  # (B, top + H, (left + W + right) * features), zero where no pixel has been written
    op: Linear
    above: list  # the taps of the rows above a pixel, as :meth:`.ops.Linear.rows` gives them
    own: tuple | None  # the taps of a pixel's own row, or None
    top: int  # zero rows above the image
    left: int  # zero columns on its left
    features: int


class PixelCaches:
    """Every layer at one pixel, (i, j), from caches of its input; ``at(i, j)`` moves to a pixel.

    A cache is (B, rows, columns * features): a row's features lie side by side, so the taps of one row at a pixel
    are one slice, read as a view and fed to one product (:meth:`.ops.Linear.rows`). The taps of the rows above a
    pixel read values that are all known once its row begins, so they are summed for every pixel of the row at
    once, at its first pixel (one product per row above, over all W windows; the row's bias in it too); a pixel
    then adds only its own row's taps. The sums are exact, so they are those of the full pass, in another order.
    """

    def __init__(self, net: Network, batch: int, height: int, width: int, device: torch.device):
        self.net, self.batch, self.height, self.width, self.device = net, batch, height, width, device
        self.caches: dict[str, LayerCache] = {}
        self.partials: dict[str, tuple[int, tuple[torch.Tensor, ...]]] = {}  # name -> (row, W x (B, out))
        self.i = self.j = 0

    def at(self, i: int, j: int) -> PixelCaches:
        self.i, self.j = i, j
        return self

    def _cache(self, name: str, features: int) -> LayerCache:
        if name not in self.caches:
            op = self.net.op(name)
            top, bottom, left, right = op.padding
            if bottom:
                raise ValueError(f"{name} reads rows below its pixel; it cannot run one pixel at a time")
            cache = torch.zeros(self.batch, self.height + top, (self.width + left + right) * features,
                                dtype=torch.float64, device=self.device)
            rows = op.rows()
            above = [r for r in rows if r[0] < 0]
            own = next((r for r in rows if r[0] == 0), None)
            self.caches[name] = LayerCache(cache, op, above, own, top, left, features)
        return self.caches[name]

    def store(self, name: str, values: torch.Tensor, i: int, j: int) -> None:
        """Write one pixel's input features (B, in) of layer ``name`` into its cache."""
        layer = self._cache(name, values.shape[-1])
        column = (j + layer.left) * layer.features
        layer.values[:, i + layer.top, column:column + layer.features] = values

    def _row_partials(self, name: str) -> tuple[torch.Tensor, ...]:
        """Per column of row i, the layer's bias plus its taps in the rows above: W x (B, out)."""
        held = self.partials.get(name)
        if held is not None and held[0] == self.i:
            return held[1]
        layer = self.caches[name]
        features = layer.features
        total = None
        for dy, lo, hi, weight in layer.above:
            row = layer.values[:, self.i + layer.top + dy]  # (B, columns * features): complete before row i starts
            first = layer.left + lo
            windows = row.unfold(1, (hi - lo + 1) * features, features)[:, first:first + self.width]
            flat = windows.transpose(0, 1).reshape(self.width * self.batch, -1)  # (W B, taps of the row)
            total = torch.addmm(layer.op.prepared[1], flat, weight) if total is None else total.addmm_(flat, weight)
        if total is None:  # no row above: the bias alone
            total = layer.op.prepared[1].expand(self.width * self.batch, -1)
        partials = total.view(self.width, self.batch, -1).unbind()
        self.partials[name] = (self.i, partials)
        return partials

    def conv(self, name: str, q: Fixed, relu: bool = False, **build) -> Fixed:
        """``build`` (how an operation is made) is unused: a step-wise pass runs a finished model."""
        layer = self._cache(name, q.values.shape[-1])
        op, features = layer.op, layer.features
        if q.exp != op.in_exp or op.relu != relu:
            raise ValueError(f"{name} does not take this input")
        self.store(name, q.values, self.i, self.j)
        partial = self._row_partials(name)[self.j]
        if layer.own is None:
            return Fixed(op.finish_prepared(partial.clone()), op.out_exp)
        _, lo, hi, weight = layer.own
        first, last = self.j + layer.left + lo, self.j + layer.left + hi
        row = layer.values[:, self.i + layer.top, first * features:(last + 1) * features]
        return Fixed(op.finish_prepared(torch.addmm(partial, row, weight)), op.out_exp)


def at_pixel(q: Fixed | None, i: int, j: int) -> Fixed | None:
    """A conditioning map (B, H or 1, W or 1, w) at pixel (i, j): (B, w)."""
    if q is None:
        return None
    v = q.values
    return Fixed(v[:, i if v.shape[1] > 1 else 0, j if v.shape[2] > 1 else 0], q.exp)
