"""Masks A and B: how PixelRNN keeps every prediction causal.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 3.4. The image is generated in raster
order, and inside a pixel in the order R, G, B. Every feature map inside the network is split into C colour groups
(C = 1 or 3); a feature of group g may only depend on values that come before the value it helps predict.

A k x k masked convolution (here k = 5) sees the rows above and the columns to the left in its own row. The centre
tap is special: it connects colour groups, never all of them::

      1 1 1 1 1        spatial part, identical for mask A and mask B
      1 1 1 1 1
      1 1 c 0 0        c = centre tap, from input group i to output group o:
      0 0 0 0 0              mask A: i <  o   (R sees nothing, G sees R, B sees R and G)
      0 0 0 0 0              mask B: i <= o   (each group also sees itself)

The centre-tap rule as a (output group x input group) table, C = 3::

      mask A     R G B          mask B     R G B
          R      0 0 0              R      1 0 0
          G      1 0 0              G      1 1 0
          B      1 1 0              B      1 1 1

Mask A is used once, in the first layer, which reads the image: there the value itself must stay hidden. Mask B is
used everywhere after, where a feature of group g at a pixel already only knows values before the one it predicts.
A 1 x 1 convolution has only the centre tap, so it is masked by colour groups alone. With C = 1, mask A removes the
centre tap and mask B keeps it.

Which feature belongs to which group is not fixed by the paper. The layout "contiguous" (the default) splits the
n features into C consecutive blocks; "interleaved" assigns feature f to group f mod C. Either is exact as long as it
is used consistently, which this module guarantees by computing groups in one place. ``ColourGroups(count, layout)``
carries both. (These colour groups are not ``nn.Conv2d``'s ``groups``, which splits a convolution into independent
grouped convolutions.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LAYOUTS = ("contiguous", "interleaved")


@dataclass(frozen=True)
class ColourGroups:
    """How feature maps are split into colour groups: ``count`` groups (the image's C) in a ``layout`` of LAYOUTS."""

    count: int
    layout: str = "contiguous"

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown colour group layout {self.layout!r}; choose one of {LAYOUTS}")


def colour_groups(features: int, colours: ColourGroups, chunks: int = 1) -> torch.Tensor:
    """The colour group of each of ``features`` feature maps.

    Args:
        features: number of feature maps.
        colours: the number of colour groups C and their layout (see the module docstring).
        chunks: the features are ``chunks`` equal stacked blocks that share one group layout; an LSTM's 4h gate maps
            (o, f, i, g) are 4 chunks of h, so that the gates of one hidden unit fall in the same group.

    Returns:
        int64 tensor [features] of values in [0, C).
    """
    if features % chunks:
        raise ValueError(f"{features} features do not split into {chunks} chunks")
    per_chunk = features // chunks
    index = torch.arange(per_chunk)
    if colours.layout == "contiguous":
        group = index * colours.count // per_chunk
    else:
        group = index % colours.count
    return group.repeat(chunks)


def conv_mask(
    out_features: int,
    in_features: int,
    kernel_size: tuple[int, int],
    mask_type: str | None,
    colours: ColourGroups,
    out_chunks: int = 1,
    in_chunks: int = 1,
) -> torch.Tensor:
    """The 0/1 mask of a conv weight [out, in, kh, kw]; the centre is at (kh // 2, kw // 2).

    ``mask_type`` is "A", "B", or None (no mask at all, for convolutions that only see earlier pixels).
    """
    kh, kw = kernel_size
    if mask_type is None:
        return torch.ones(out_features, in_features, kh, kw)
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A', 'B' or None, not {mask_type!r}")
    cy, cx = kh // 2, kw // 2
    mask = torch.zeros(out_features, in_features, kh, kw)
    mask[:, :, :cy, :] = 1  # rows above
    mask[:, :, cy, :cx] = 1  # left in the same row
    out_group = colour_groups(out_features, colours, out_chunks)[:, None]
    in_group = colour_groups(in_features, colours, in_chunks)[None, :]
    allowed = in_group < out_group if mask_type == "A" else in_group <= out_group
    mask[:, :, cy, cx] = allowed.float()
    return mask


class ReluPad(torch.autograd.Function):
    """``F.pad(torch.relu(x), pad)`` for maps x (B, C, H, W), ``pad`` = (left, right, top, bottom), in one pass.

    The ReLU is written straight into the interior of the padded maps, of x's layout, and only their border is
    zeroed; backward reads the gradient straight out of the interior. Separately, the ReLU and the padding each
    made a full pass over the maps, forward and backward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
        left, right, top, bottom = pad
        b, c, height, width = x.shape
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        out = torch.empty(b, c, top + height + bottom, left + width + right, dtype=x.dtype, device=x.device,
                          memory_format=layout)
        out[:, :, :top].zero_()
        out[:, :, top + height:].zero_()
        out[:, :, top:top + height, :left].zero_()
        out[:, :, top:top + height, left + width:].zero_()
        torch.clamp_min(x, 0, out=out[:, :, top:top + height, left:left + width])  # torch.relu is clamp_min(x, 0)
        ctx.save_for_backward(out)
        ctx.interior = (slice(top, top + height), slice(left, left + width))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        rows, cols = ctx.interior
        return torch.ops.aten.threshold_backward(grad[:, :, rows, cols], out[:, :, rows, cols], 0), None


class MaskedConv2d(nn.Conv2d):
    """A 2-d convolution whose weight is multiplied by a fixed mask in every forward call.

    The stored weight is never edited; the product ``weight * mask`` is what the convolution uses, so gradients of
    masked taps are zero and the mask follows the module's dtype and device as a buffer. Padding keeps the spatial
    size ("same" convolution, centred kernel).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | tuple[int, int],
        mask_type: str | None,
        colours: ColourGroups,
        out_chunks: int = 1,
        in_chunks: int = 1,
        bias: bool = True,
    ):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"masked convolutions need odd kernel sizes, not {kh}x{kw}")
        super().__init__(in_features, out_features, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type = mask_type
        mask = conv_mask(out_features, in_features, (kh, kw), mask_type, colours, out_chunks, in_chunks)
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._convolve(x, relu=False)

    def of_relu(self, x: torch.Tensor) -> torch.Tensor:
        """``self(torch.relu(x))``; where the input is padded, the ReLU is written straight into the padded maps
        (:class:`ReluPad`): one pass over x instead of two, forward and backward."""
        return self._convolve(x, relu=True)

    def _convolve(self, x: torch.Tensor, relu: bool) -> torch.Tensor:
        # Only the taps the mask can keep are computed: the rows below the centre are always zero, and in a
        # one-row kernel so are the columns right of the centre. Padding the input on the top and the sides
        # instead of around it gives the same "same" convolution with up to half the arithmetic.
        kh, kw = self.kernel_size
        rows = kh // 2 + 1
        cols = kw // 2 + 1 if kh == 1 and self.mask_type is not None else kw
        if self.mask_type is None or (rows, cols) == (kh, kw):
            return F.conv2d(torch.relu(x) if relu else x, self.masked_weight(), self.bias, padding=self.padding)
        weight = self.masked_weight()[:, :, :rows, :cols]
        pad = (kw // 2, cols - 1 - kw // 2, kh // 2, 0)
        return F.conv2d(ReluPad.apply(x, pad) if relu else F.pad(x, pad), weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type}"
