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

import torch

from .arith import Fixed
from .network import Network


class FullMap:
    """Every layer on the whole map."""

    def __init__(self, net: Network):
        self.net = net

    def conv(self, name: str, q: Fixed, **build) -> Fixed:
        return self.net.linear(name, q, **build)


class PixelCaches:
    """Every layer at one pixel, (i, j), from caches of its input; ``at(i, j)`` moves to a pixel.

    A cache is (B, rows, columns * features): a row's features lie side by side, so the taps of one row at a pixel
    are one slice, read as a view and fed to one product (:meth:`.ops.Linear.rows`).
    """

    def __init__(self, net: Network, batch: int, height: int, width: int, device: torch.device):
        self.net, self.batch, self.height, self.width, self.device = net, batch, height, width, device
        self.caches: dict[str, tuple[torch.Tensor, list, int, int, int]] = {}
        self.i = self.j = 0

    def at(self, i: int, j: int) -> PixelCaches:
        self.i, self.j = i, j
        return self

    def _cache(self, name: str, features: int):
        if name not in self.caches:
            op = self.net.op(name)
            top, bottom, left, right = op.padding
            if bottom:
                raise ValueError(f"{name} reads rows below its pixel; it cannot run one pixel at a time")
            cache = torch.zeros(self.batch, self.height + top, (self.width + left + right) * features,
                                dtype=torch.float64, device=self.device)
            self.caches[name] = (cache, op.rows(), top, left, features)
        return self.caches[name]

    def store(self, name: str, values: torch.Tensor, i: int, j: int) -> None:
        """Write one pixel's input features (B, in) of layer ``name`` into its cache."""
        cache, _, top, left, features = self._cache(name, values.shape[-1])
        cache[:, i + top, (j + left) * features:(j + left + 1) * features] = values

    def conv(self, name: str, q: Fixed, relu: bool = False, **build) -> Fixed:
        """``build`` (how an operation is made) is unused: a step-wise pass runs a finished model."""
        op = self.net.op(name)
        if q.exp != op.in_exp or op.relu != relu:
            raise ValueError(f"{name} does not take this input")
        self.store(name, q.values, self.i, self.j)
        cache, rows, top, left, features = self.caches[name]
        total = None
        for dy, lo, hi, weight in rows:
            row = cache[:, self.i + top + dy, (self.j + left + lo) * features:(self.j + left + hi + 1) * features]
            total = torch.addmm(op.prepared[1], row, weight) if total is None else total.addmm_(row, weight)
        return Fixed(op.finish_prepared(total), op.out_exp)


def at_pixel(q: Fixed | None, i: int, j: int) -> Fixed | None:
    """A conditioning map (B, H or 1, W or 1, w) at pixel (i, j): (B, w)."""
    if q is None:
        return None
    v = q.values
    return Fixed(v[:, i if v.shape[1] > 1 else 0, j if v.shape[2] > 1 else 0], q.exp)
