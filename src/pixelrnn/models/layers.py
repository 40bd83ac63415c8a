"""Pieces shared by the model families of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016).

The output head (section 3.5 and table 4 of the paper): ReLU, a 1 x 1 mask-B convolution to ``head`` maps, ReLU, and
a 1 x 1 mask-B convolution to C*K logits, reshaped to one K-way softmax per colour value.

The step-wise forms of the masked convolutions, which every family's stepper uses to evaluate a layer at one
new pixel from a cache of its input (fast generation, :mod:`pixelrnn.generate`). Caches are channels-last,
(B, rows, columns, features), padded with zeros where a layer reads outside the image. A k x k convolution reads
only the rows above and its own row (the mask zeroes every tap that is not computed yet, exactly as in the full pass):
:class:`ConvAt` reads both at each pixel, :class:`RowSplitConvAt` the rows above once per row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import ColourGroups, MaskedConv2d


def linear_of(conv: MaskedConv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A 1 x 1 masked convolution as the (weight, bias) of F.linear, for one pixel's features."""
    return conv.masked_weight()[:, :, 0, 0], conv.bias


class OutputHead(nn.Module):
    """ReLU -> 1x1 mask B -> ReLU -> 1x1 mask B, giving logits [B, K, C, H, W]."""

    def __init__(self, in_features: int, head: int, levels: int, colours: ColourGroups):
        super().__init__()
        self.levels, self.colours = levels, colours
        self.hidden = MaskedConv2d(in_features, head, 1, "B", colours)
        self.logits = MaskedConv2d(head, colours.count * levels, 1, "B", colours)

    def unfold(self, out: torch.Tensor) -> torch.Tensor:
        """(B, C*K, *where) -> (B, K, C, *where): one K-way softmax per colour value."""
        b, rest = out.shape[0], out.shape[2:]
        c, k = self.colours.count, self.levels
        # The logit features carry the same colour groups as every other layer: with contiguous groups feature
        # f belongs to colour f // K, with interleaved groups to colour f % C. Unfold accordingly.
        if self.colours.layout == "contiguous":
            return out.view(b, c, k, *rest).transpose(1, 2)
        return out.view(b, k, c, *rest)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.unfold(self.logits(torch.relu(self.hidden(torch.relu(h)))))  # (B, K, C, H, W)

    def at(self, h: torch.Tensor) -> torch.Tensor:
        """The head at one pixel: features (B, F) -> logits (B, K, C)."""
        hidden = F.linear(torch.relu(h), *linear_of(self.hidden))  # (B, head)
        return self.unfold(F.linear(torch.relu(hidden), *linear_of(self.logits)))  # (B, K, C)


class ConvAt:
    """A masked convolution evaluated at one pixel, from a zero-padded channels-last cache of its input."""

    def __init__(self, conv: MaskedConv2d):
        kh, kw = conv.kernel_size
        self.rows, self.cols = kh // 2 + 1, kw  # rows below the centre are masked out: never read them
        weight = conv.masked_weight()[:, :, : self.rows]  # (out, in, rows, kw)
        self.weight = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)  # matches a (rows, kw, in) patch
        self.bias = conv.bias
        self.pad_top, self.pad_side = kh // 2, kw // 2

    def cache(self, batch: int, height: int, width: int, features: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, height + self.pad_top, width + 2 * self.pad_side, features)

    def __call__(self, cache: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """(B, out): the convolution's output at pixel (i, j)."""
        patch = cache[:, i:i + self.rows, j:j + self.cols]  # rows i - kh//2 .. i, columns j - kw//2 .. j + kw//2
        return F.linear(patch.reshape(patch.shape[0], -1), self.weight, self.bias)

    def store(self, cache: torch.Tensor, i: int, j: int, value: torch.Tensor) -> None:
        cache[:, i + self.pad_top, j + self.pad_side] = value

    def on_image(self, x: torch.Tensor, i: int, j: int, to_inputs) -> torch.Tensor:
        """(B, out) at pixel (i, j), reading the image x [B, C, H, W] itself (mapped by ``to_inputs``), not a cache.

        The image changes under generation (a value is drawn after its logits are computed), so the first layer
        reads the live image, zero-padded like the full convolution.
        """
        width = x.shape[-1]
        top, left = i - self.pad_top, j - self.pad_side
        window = to_inputs(x[:, :, max(0, top):i + 1, max(0, left):j + self.pad_side + 1])
        pad = (max(0, -left), max(0, j + self.pad_side + 1 - width), max(0, -top), 0)
        if any(pad):  # the window crosses the image's border
            window = F.pad(window, pad)
        return F.linear(window.permute(0, 2, 3, 1).reshape(window.shape[0], -1), self.weight, self.bias)


class RowSplitConvAt:
    """A masked k x k convolution at one pixel of the row being generated, split at that row.

    Under the mask, pixel (i, j) reads the k//2 rows above it, complete before row i starts, and in its own row
    the k//2 pixels left of it and itself. The rows above are read for all pixels of row i at once, when the row
    starts (:meth:`start_row`: one matrix product over the row, into a buffer); each pixel adds only its own row's
    k//2 + 1 taps (:meth:`__call__`: one ``addmm`` of a window of the cache, a view, to its part of that buffer).
    Its input comes in through :meth:`store`, pixel after pixel in raster order.

    The cache holds only the rows a pixel can read: channels-last, (B, k//2 + 1, W + 2 (k//2), in), the k//2 rows
    above and the row being generated, zero where the convolution reads outside the image. A new row shifts it up by
    one row, so every view of it (a pixel's input slot and its window) is made once, here, not once per row: a
    pixel indexes lists. It stays small enough for the caches (245 KB for 16 images of 28 columns and 64 features,
    where the whole map took 3.6 MB).
    """

    def __init__(self, conv: MaskedConv2d, batch: int, height: int, width: int, like: torch.Tensor):
        if conv.mask_type is None:
            raise ValueError("RowSplitConvAt reads no row below a pixel nor right of it: it needs a masked convolution")
        kh, kw = conv.kernel_size
        self.top, self.side, self.width = kh // 2, kw // 2, width
        weight = conv.masked_weight()  # (out, in, kh, kw)
        out_features, in_features = weight.shape[:2]
        # As matrices for addmm, (patch features, out), the patch read channels-last: (rows, columns, in).
        self.above = weight[:, :, :self.top].permute(2, 3, 1, 0).reshape(-1, out_features)
        self.own_row = weight[:, :, self.top, :self.side + 1].permute(2, 1, 0).reshape(-1, out_features)
        self.bias = conv.bias if conv.bias is not None else like.new_zeros(out_features)
        self.cache = like.new_zeros(batch, self.top + 1, width + 2 * self.side, in_features)
        own = self.cache[:, self.top]  # (B, W + 2 (k//2), in): the row being generated
        self.slots = own[:, self.side:self.side + width].unbind(1)  # W x (B, in): pixel j's input
        # windows[j] (B, (k//2 + 1) in): the own row's columns j - k//2 .. j, each image's run of the cache.
        self.windows = own.as_strided((width, batch, (self.side + 1) * in_features),
                                      (in_features, self.cache.stride(0), 1), own.storage_offset()).unbind()
        self.partial = like.new_empty(width * batch, out_features)  # (W B, out): the bias and the rows above
        self.partials = self.partial.view(width, batch, -1).unbind()  # W x (B, out)
        self.row = -1  # no row started yet

    def start_row(self, i: int) -> None:
        """Shift the cache up to row i and read the rows above it for each of its pixels."""
        if i != self.row + 1:
            raise ValueError(f"rows are stored in order: row {i} cannot follow row {self.row}")
        if i > 0:  # row i - 1, complete, becomes the last row above; the oldest one leaves the cache
            for r in range(self.top):  # one row at a time, upward: each copy's source and target are apart
                self.cache[:, r].copy_(self.cache[:, r + 1])
        if self.top:
            above = self.cache[:, :self.top].unfold(2, 2 * self.side + 1, 1)  # (B, k//2, W, in, k)
            patches = above.permute(2, 0, 1, 4, 3).reshape(self.width * self.cache.shape[0], -1)  # (W B, k//2 k in)
            torch.addmm(self.bias, patches, self.above, out=self.partial)
        else:  # a 1 x k convolution reads no row above
            self.partial.copy_(self.bias.expand_as(self.partial))
        self.row = i

    def store(self, i: int, j: int, value: torch.Tensor, relu: bool = False) -> None:
        """Put the input ``value`` (B, in) at pixel (i, j) (its ReLU, if ``relu``: one pass, not two)."""
        if i != self.row:
            self.start_row(i)
        if relu:
            torch.clamp_min(value, 0, out=self.slots[j])  # torch.relu is clamp_min(x, 0)
        else:
            self.slots[j].copy_(value)

    def __call__(self, i: int, j: int) -> torch.Tensor:
        """(B, out): the convolution's output at pixel (i, j), once its input there is stored (a new tensor: a
        pixel of C colours is evaluated C times, its row's partial sum read each time)."""
        return torch.addmm(self.partials[j], self.windows[j], self.own_row)
