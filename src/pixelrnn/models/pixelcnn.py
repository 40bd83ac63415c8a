"""PixelCNN: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), sections 3.4-3.5 and figure 5.

A 7 x 7 convolution with mask A reads the image; then ``layers`` residual blocks, each
2h -> ReLU -> 1x1 (mask B) -> h -> ReLU -> 3x3 (mask B) -> h -> ReLU -> 1x1 (mask B) -> 2h, added to its input;
then the output head (two ReLU + 1 x 1 mask-B layers) gives C*K logits.

Section 4 of the paper: "Residual and layer-to-output connections are used across the layers of all three
networks", the PixelCNN included. So by default each block's 2h output also reaches the head through its own
learned 1 x 1 mask-B convolution, and the head reads the sum of these skips, exactly as in the LSTM models.
``skip=False`` gives a head that reads the last block (what checkpoints
written before the option existed hold); ``residual=False`` drops the additions to the blocks' inputs. The receptive field is bounded and has the
well-known blind spot to the upper right; that is a property of this model, kept as the paper has it.

No normalisation layer: batch statistics would make one image's likelihood depend on the other images of the batch,
and on their future pixels.

:class:`PixelCNNStepper` evaluates the same network at one new pixel for fast generation: only the k x k convolution
of each block reads a neighbourhood, from a cache of its input; the 1 x 1 convolutions need the new pixel alone.
:class:`QuickPixelCNNStepper`, what sampling and completion use, does the same in fewer operations; the first stays,
bit for bit, for the codec's float-path files.

The training pass keeps its maps channels-last and the skips composed (:class:`ComposedSkips`); ``compose_skips =
False`` runs the formula as written above, the reference the tests hold it to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import ColourGroups, MaskedConv2d
from ..precision import autocast_off
from .base import AutoregressiveModel, ModelConfig, Stepper
from .layers import ConvAt, OutputHead, RowSplitConvAt, linear_of
from .registry import register


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """The maps x (B, C, H, W) stored channels-last, a layout that the convolutions after them keep.

    oneDNN runs a 1 x 1 convolution over channels-last maps as one matrix product over all pixels, and a k x k one
    without reordering; over NCHW maps it reorders (in bf16 it copies) its input and output at every call, which
    made that copying a third of a bf16 training step. ``x.contiguous(memory_format=torch.channels_last)`` would leave
    a one-channel map as it is (its strides fit both layouts, and oneDNN then reads it as NCHW), so the strides are
    set explicitly.
    """
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    layers: int = 15  # residual blocks after the first layer (the paper's CIFAR-10 model)
    hidden: int = 128  # h; residual streams carry 2h maps
    head: int = 1024  # width of the output head
    first_kernel: int = 7
    kernel: int = 3
    residual: bool = True  # each block's output is added to its input (figure 5)
    skip: bool = True  # layer-to-output connections: section 4 uses them "across the layers of all three networks"

    BEFORE: ClassVar[dict[str, Any]] = {"skip": False, "residual": True}


class ResidualBlock(nn.Module):
    """Figure 5 of the paper: a bottleneck of 1x1, kxk and 1x1 mask-B convolutions; ``PixelCNN.forward`` adds its
    output to its input."""

    def __init__(self, hidden: int, kernel: int, colours: ColourGroups):
        super().__init__()
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", colours)
        self.conv = MaskedConv2d(hidden, hidden, kernel, "B", colours)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", colours)

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The block up to its last 1x1 convolution: the h maps (B, h, H, W) that ``expand`` reads."""
        h = self.reduce(torch.relu(x))  # (B, h, H, W)
        return torch.relu(self.conv.of_relu(h))  # (B, h, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.bottleneck(x))  # (B, 2h, H, W)


def pixels(maps: torch.Tensor) -> torch.Tensor:
    """Channels-last maps (B, F, H, W) as the matrix (B*H*W, F) of their pixels' features (a view, no copy)."""
    if maps.device.type == "meta" and not maps.is_contiguous(memory_format=torch.channels_last):
        # The meta device's convolutions return NCHW maps where the CPU's and CUDA's keep channels-last: read them
        # as the real devices lay them out, so that a memory estimate on meta (pixelrnn.budget) counts no copy here.
        _, c, _, w = maps.shape
        maps = maps.as_strided(maps.shape, (maps[0].numel(), 1, w * c, c))
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


def maps_of(features: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pixels`: (B*H*W, F) -> channels-last maps (B, F, H, W), of the batch and size of
    ``like``."""
    b, _, height, width = like.shape
    return features.view(b, height, width, features.shape[1]).permute(0, 3, 1, 2)


class ComposedSkips:
    """The sum of the layer-to-output connections, sum_k skips[k](expand_k(h_k)), in one accumulating product.

    Both are 1x1 convolutions, so their composition is one linear map of the block's h maps h_k: the weight
    S_k E_k (2h x h) and the bias S_k e_k + s_k. Applied to h_k instead of the block's 2h output it costs half the
    product, and ``addmm_`` adds each block's share to the running sum inside the product (beta = 1) rather than in
    a separate pass over the maps. The product of two mask-B maps is itself mask-B: a path from input group i through
    group m to output group o has i <= m <= o. :class:`PixelCNN` with ``compose_skips = False`` runs the formula as
    written, the reference that tests compare this with.
    """

    def __init__(self, skips: nn.ModuleList, expands: list[MaskedConv2d]):
        # In the parameters' dtype even under autocast: the composed weights are rounded to bfloat16 once, where
        # they are used, not the factors, their product and each bias of the sum.
        with autocast_off(skips[0].weight.device):
            skip_weights = [skip.masked_weight().flatten(1) for skip in skips]  # (2h, 2h) each
            self.weights = [s @ e.masked_weight().flatten(1) for s, e in zip(skip_weights, expands)]  # (2h, h) each
            self.bias = sum(s @ expand.bias + skip.bias for s, skip, expand in zip(skip_weights, skips, expands))

    def add(self, total: torch.Tensor | None, k: int, h: torch.Tensor) -> torch.Tensor:
        """``total`` (B*H*W, 2h) plus block k's skip, from its h maps (B, h, H, W); the first block's starts it."""
        if total is None:
            return torch.addmm(self.bias, pixels(h), self.weights[k].t())  # every block's bias, once
        # In place, outside autocast's reach: take the sum's dtype (bfloat16 under autocast) explicitly.
        return total.addmm_(pixels(h).to(total.dtype), self.weights[k].t().to(total.dtype))


@register
class PixelCNN(AutoregressiveModel):
    """Section 3.4: masked convolutions only; bounded receptive field, fast to train.

    ``compose_skips`` (the default): the layer-to-output connections as one accumulating product
    (:class:`ComposedSkips`) instead of the sum of ``skips[k](out_k)``. The same network and parameters, a speed
    setting only: set it on a model (``model.compose_skips = False``) or on the class.
    """

    name = "pixelcnn"
    Config = PixelCNNConfig
    compose_skips = True

    def __init__(self, settings: PixelCNNConfig):
        super().__init__(settings)
        colours = settings.colours
        self.input = MaskedConv2d(colours.count, 2 * settings.hidden, settings.first_kernel, "A", colours)
        self.blocks = nn.ModuleList(ResidualBlock(settings.hidden, settings.kernel, colours) for _ in range(settings.layers))
        if settings.skip:
            self.skips = nn.ModuleList(MaskedConv2d(2 * settings.hidden, 2 * settings.hidden, 1, "B", colours)
                                       for _ in range(settings.layers))
        self.head = OutputHead(2 * settings.hidden, settings.head, settings.levels, colours)
        self.make_conditioning([2 * settings.hidden] * settings.layers)  # a conditioning bias joins each block's input

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        self.check_images(x)
        biases = self.layer_biases(y, context) or [None] * self.settings.layers
        stream = self.input(channels_last(self.to_inputs(x)))  # (B, 2h, H, W), channels-last like all that follows
        skips = self.composed_skips() if self.settings.skip and self.compose_skips else None
        skip_sum = None
        for k, block in enumerate(self.blocks):
            if biases[k] is not None:
                stream = stream + biases[k]  # the conditioning bias joins the block's input
            h = block.bottleneck(stream)  # (B, h, H, W)
            if skips is not None:
                skip_sum = skips.add(skip_sum, k, h)  # (B*H*W, 2h)
                if k == len(self.blocks) - 1:
                    break  # the head reads the skips alone: the last block's output would go nowhere
            out = block.expand(h)  # (B, 2h, H, W)
            stream = stream + out if self.settings.residual else out
            if skips is None and self.settings.skip:
                skipped = self.skips[k](out)  # (B, 2h, H, W)
                skip_sum = skipped if skip_sum is None else skip_sum + skipped
        if skips is not None:
            skip_sum = maps_of(skip_sum, stream)  # (B, 2h, H, W)
        return self.head(skip_sum if self.settings.skip else stream)  # (B, K, C, H, W)

    def composed_skips(self) -> ComposedSkips:
        """Each block's layer-to-output connection composed with its last 1x1 convolution (see ComposedSkips)."""
        return ComposedSkips(self.skips, [block.expand for block in self.blocks])

    def stepper(self, batch: int, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> PixelCNNStepper:
        return PixelCNNStepper(self, batch, y=y, context=context)

    def quick_stepper(self, batch: int, y: torch.Tensor | None = None,
                      context: torch.Tensor | None = None) -> QuickPixelCNNStepper:
        return QuickPixelCNNStepper(self, batch, y=y, context=context)


class BlockAt(NamedTuple):
    """A residual block at one pixel: its 1 x 1 convolutions as linear maps, its k x k one over a cache."""

    reduce: tuple[torch.Tensor, torch.Tensor | None]
    conv: ConvAt
    cache: torch.Tensor  # (B, H + k//2, W + 2 (k//2), h): the block's h maps before the k x k convolution
    expand: tuple[torch.Tensor, torch.Tensor | None]


class PixelCNNStepper(Stepper):
    """:class:`PixelCNN` at one pixel at a time, each block's k x k convolution reading a cache of its input.

    The loop of ``PixelCNN.forward`` as written, one linear map after the other: the arithmetic that every file of
    the codec's float path (format versions 2 and 3) was coded with, kept as it is so that they decode bit for bit.
    Sampling and completion take :class:`QuickPixelCNNStepper`.
    """

    def __init__(self, model: PixelCNN, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        self.input = ConvAt(model.input)
        self.blocks = []
        for block in model.blocks:
            conv = ConvAt(block.conv)
            cache = conv.cache(batch, self.height, self.width, block.conv.in_channels, self.like)
            self.blocks.append(BlockAt(linear_of(block.reduce), conv, cache, linear_of(block.expand)))
        self.skips = [linear_of(conv) for conv in model.skips] if model.settings.skip else None

    def block_at(self, n: int, h: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """Block n's output (B, 2h) at pixel (i, j) from its input ``h`` there, caching what its k x k conv reads."""
        block = self.blocks[n]
        block.conv.store(block.cache, i, j, torch.relu(F.linear(torch.relu(h), *block.reduce)))  # (B, h)
        return F.linear(torch.relu(block.conv(block.cache, i, j)), *block.expand)  # (B, 2h)

    def logits(self, x, i, j):
        """The loop of ``PixelCNN.forward`` at one pixel."""
        stream = self.input.on_image(x, i, j, self.model.to_inputs)  # (B, 2h)
        skip_sum = None
        for k in range(len(self.blocks)):
            bias = self.bias(k, i, j)
            if bias is not None:
                stream = stream + bias
            out = self.block_at(k, stream, i, j)  # (B, 2h)
            stream = stream + out if self.model.settings.residual else out
            if self.skips:
                skipped = F.linear(out, *self.skips[k])  # (B, 2h)
                skip_sum = skipped if skip_sum is None else skip_sum + skipped
        return self.model.head.at(skip_sum if self.skips else stream)  # (B, K, C)


def matrix_of(conv: MaskedConv2d) -> torch.Tensor:
    """A 1 x 1 masked convolution as the (in, out) matrix that multiplies a pixel's features in ``addmm``."""
    return conv.masked_weight().flatten(1).t()


class QuickPixelCNNStepper(Stepper):
    """:class:`PixelCNN` at one pixel at a time in fewer, larger operations than :class:`PixelCNNStepper`, equal to it
    up to float rounding: what sampling and completion use.

    The per-pixel work is a short run of matrix products, their weights masked, composed and transposed once, here:
    each block's k x k convolution reads the rows above once per row (:class:`.layers.RowSplitConvAt`). The h maps
    of every block at the pixel go into one buffer, (B, layers, h + 1), each beside a constant 1 that carries the
    biases: the last 1 x 1 convolution and the residual addition are one ``addmm_`` into the stream, and the
    layer-to-output connections of all blocks one product of the whole buffer (the composed skips of
    :class:`ComposedSkips`).
    """

    def __init__(self, model: PixelCNN, batch: int, **conditions):
        with torch.no_grad():  # generation and coding: no gradient flows, and the per-pixel ops write into buffers
            self._build(model, batch, **conditions)

    def _build(self, model: PixelCNN, batch: int, **conditions) -> None:
        super().__init__(model, batch, **conditions)
        settings, hidden = model.settings, model.settings.hidden
        self.residual = settings.residual
        # The input convolution reads the image through a cache of its values as the network reads them, stored a
        # pixel at a time: each image value in [0, K) by one lookup instead of the scaling's ops.
        self.input = RowSplitConvAt(model.input, batch, self.height, self.width, self.like)
        self.inputs = model.to_inputs(torch.arange(model.levels, device=self.like.device))
        self.last = None  # the pixel of the last call: its values are final once the walk moves on
        # The stream (B, 2h) beside a constant 1 that carries the biases of the blocks' first 1 x 1 convolutions.
        self.stream_one = self.like.new_zeros(batch, 2 * hidden + 1)
        self.stream_one[:, -1] = 1
        self.stream = self.stream_one[:, :-1]
        self.reduce = [torch.cat([matrix_of(block.reduce), block.reduce.bias[None]]) for block in model.blocks]
        self.convs = [RowSplitConvAt(block.conv, batch, self.height, self.width, self.like) for block in model.blocks]
        self.maps = self.like.new_zeros(batch, settings.layers, hidden + 1)  # (B, L, h + 1)
        self.maps[:, :, hidden] = 1
        self.with_one = list(self.maps.unbind(1))  # block k's (B, h + 1): its h maps and the constant 1
        self.without = [m[:, :hidden] for m in self.with_one]  # block k's (B, h)
        self.expand = [torch.cat([matrix_of(block.expand), block.expand.bias[None]]) for block in model.blocks]
        self.skips = None
        if settings.skip:
            skips = model.composed_skips()
            rows = [torch.cat([w.t(), torch.zeros_like(skips.bias)[None]]) for w in skips.weights]  # (h + 1, 2h)
            rows[0][hidden] = skips.bias  # every block's skip bias, on the first block's constant 1
            self.skips = torch.cat(rows)  # (L (h + 1), 2h)
        head = model.head
        self.head = [(matrix_of(head.hidden), head.hidden.bias), (matrix_of(head.logits), head.logits.bias)]

    @torch.no_grad()
    def logits(self, x, i, j):
        """The loop of ``PixelCNN.forward`` at one pixel."""
        stream = self.stream
        stream.copy_(self.input_at(x, i, j))  # (B, 2h)
        for k, conv in enumerate(self.convs):
            if self.biases is not None:
                bias = self.bias(k, i, j)
                if bias is not None:
                    stream += bias
            conv.store(i, j, torch.relu(self.stream_one) @ self.reduce[k], relu=True)  # (B, h)
            torch.clamp_min(conv(i, j), 0, out=self.without[k])  # the block's h maps at (i, j)
            if self.skips is not None and k == len(self.convs) - 1:
                break  # the head reads the skips alone
            if self.residual:
                stream.addmm_(self.with_one[k], self.expand[k])  # stream + expand(h), its bias on the constant 1
            else:
                stream.copy_(self.with_one[k] @ self.expand[k])  # (B, 2h)
        features = self.maps.view(len(stream), -1) @ self.skips if self.skips is not None else stream  # (B, 2h)
        for weight, b in self.head:
            features = torch.addmm(b, torch.relu(features), weight)
        return self.model.head.unfold(features)  # (B, K, C)

    def input_at(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The input convolution at (i, j), reading the image ``x`` [B, C, H, W] as the walk fills it in.

        A pixel's last value is drawn after its last pass, so its values are stored when the walk first calls the
        next pixel; those of the pixel itself on every call, for its later colours (mask A reads the earlier ones).
        """
        if self.last is not None and self.last != (i, j):
            self.input.store(*self.last, self.inputs[x[:, :, self.last[0], self.last[1]]])
        if self.channels > 1 or self.last is None or self.last[0] != i:  # a row starts on its first store
            self.input.store(i, j, self.inputs[x[:, :, i, j]])
        self.last = (i, j)
        return self.input(i, j)
