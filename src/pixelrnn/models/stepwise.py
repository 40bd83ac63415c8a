"""Step-wise evaluation for fast generation: each layer at one new pixel, from cached activations.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) generates images one value at a time. Run
naively, that is one full forward pass per value. But the network is causal: the activations of every layer at a
pixel depend only on the values before it, so once a pixel is known its activations never change. A stepper keeps
each layer's activations in a cache and, for a new pixel, computes every layer at that pixel alone (the fast caching
of PixelCNN++, 2017, reduced to its simplest frontier: one pixel):

- masked convolutions read their k x k neighbourhood from the cache of their input; the mask zeroes every tap that
  is not computed yet, exactly as in the full pass;
- the Row LSTM reads the states of the row above and the left neighbour of its input;
- the Diagonal BiLSTM computes the left-to-right state per pixel (from the pixel above and the one to its left);
  the right-to-left state of a row needs the whole row, so it is computed for every layer once a row is complete,
  and the pixels of the next row read it through the one-row down-shift.

Inside a pixel no activation depends on the pixel's own last channel (mask A hides a value from its own features),
so the computation made for the last channel's logits is already the final one for the cache.

All caches are channels-last, (B, rows, columns, features), padded with zeros where a layer reads outside the image.
Every stepper is tested to give the full forward pass's logits at every position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..masks import MaskedConv2d
from .recurrent import lstm_update


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

    def on_image(self, x: torch.Tensor, i: int, j: int, scale) -> torch.Tensor:
        """(B, out) at pixel (i, j), reading the image x [B, C, H, W] itself (scaled by ``scale``), not a cache.

        The image changes under generation (a value is drawn after its logits are computed), so the first layer
        reads the live image, zero-padded like the full convolution.
        """
        height, width = x.shape[-2:]
        top, left = i - self.pad_top, j - self.pad_side
        window = scale(x[:, :, max(0, top):i + 1, max(0, left):j + self.pad_side + 1])
        window = F.pad(window, (max(0, -left), max(0, j + self.pad_side + 1 - width), max(0, -top), 0))
        return F.linear(window.permute(0, 2, 3, 1).reshape(window.shape[0], -1), self.weight, self.bias)


def linear_of(conv: MaskedConv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A 1 x 1 masked convolution as the (weight, bias) of F.linear."""
    return conv.masked_weight()[:, :, 0, 0], conv.bias


class Stepper:
    """The interface every model's stepper has; generation calls these in model order.

    ``y`` (class labels) and ``context`` (a map) condition the model as in its full pass: their per-layer biases
    are computed once, for the whole map, and read at each pixel.
    """

    def __init__(self, model, batch: int, y: torch.Tensor | None = None, context: torch.Tensor | None = None):
        self.model, self.batch = model, batch
        self.channels, self.height, self.width = model.image_shape
        biases = model.layer_biases(y, context)
        self.biases = [None if b is None else b.expand(batch, -1, self.height, self.width) for b in biases] or None

    def bias(self, layer: int, i: int, j: int | slice) -> torch.Tensor | None:
        """The conditioning bias of a layer at pixel (i, j): (B, width), or (B, width, W) for a whole row."""
        if self.biases is None or self.biases[layer] is None:
            return None
        b = self.biases[layer][:, :, i, j]
        return b if isinstance(j, int) else b.transpose(1, 2)

    def logits(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """(B, K, C): the logits of pixel (i, j) given ``x`` before it (and its own channels before each one)."""
        raise NotImplementedError

    def end_row(self, x: torch.Tensor, i: int) -> None:
        """Called once row i is complete."""


class HeadAt:
    """The output head at one pixel."""

    def __init__(self, head):
        self.hidden, self.logits = linear_of(head.hidden), linear_of(head.logits)
        self.head = head

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        out = F.linear(torch.relu(F.linear(torch.relu(h), *self.hidden)), *self.logits)  # (B, C*K)
        c, k = self.head.channels, self.head.levels
        if self.head.grouping == "contiguous":
            return out.view(-1, c, k).transpose(1, 2)  # (B, K, C)
        return out.view(-1, k, c)


class PixelCNNStepper(Stepper):
    def __init__(self, model, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        like = next(model.parameters())
        self.input = ConvAt(model.input)
        self.blocks = []
        for block in model.blocks:
            conv = ConvAt(block.conv)
            cache = conv.cache(batch, self.height, self.width, block.conv.in_channels, like)
            self.blocks.append((linear_of(block.reduce), conv, cache, linear_of(block.expand)))
        self.head = HeadAt(model.head)

    def logits(self, x, i, j):
        h = self.input.on_image(x, i, j, self.model.scale)  # (B, 2h)
        for n, (reduce, conv, cache, expand) in enumerate(self.blocks):
            bias = self.bias(n, i, j)
            if bias is not None:
                h = h + bias
            conv.store(cache, i, j, torch.relu(F.linear(torch.relu(h), *reduce)))
            h = h + F.linear(torch.relu(conv(cache, i, j)), *expand)
        return self.head(h)


class RecurrentStepper(Stepper):
    """The stack around the LSTM layers (mask-A input, residual and skip paths, head); subclasses step a layer."""

    def __init__(self, model, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        self.like = next(model.parameters())
        self.input = ConvAt(model.input)
        self.outputs = [linear_of(conv) for conv in model.outputs]
        self.skips = [linear_of(conv) for conv in model.skips] if model.cfg.skip else None
        self.head = HeadAt(model.head)

    def layer_states(self, k: int, stream: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """(B, h): layer k's states at pixel (i, j), given its input ``stream`` there."""
        raise NotImplementedError

    def logits(self, x, i, j):
        stream = self.input.on_image(x, i, j, self.model.scale)  # (B, 2h)
        skip_sum = None
        for k in range(len(self.outputs)):
            out = F.linear(self.layer_states(k, stream, i, j), *self.outputs[k])
            stream = stream + out if self.model.cfg.residual else out
            if self.skips is not None:
                skip = F.linear(out, *self.skips[k])
                skip_sum = skip if skip_sum is None else skip_sum + skip
        return self.head(skip_sum if self.skips is not None else stream)


class RowLSTMStepper(RecurrentStepper):
    def __init__(self, model, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        self.layers = []
        for layer in model.lstm_layers:
            conv = ConvAt(layer.input_to_state)  # 1 x k, mask B: reads (i, j - k//2 .. j) of its input
            hid, k = layer.hidden, layer.state_to_state.kernel_size[0]
            stream_cache = conv.cache(batch, self.height, self.width, 2 * hid, self.like)
            # States of each row with a zero row on top (the initial state) and k // 2 zero columns each side.
            states = self.like.new_zeros(batch, self.height + 1, self.width + 2 * (k // 2), hid)
            cells = self.like.new_zeros(batch, self.height + 1, self.width, hid)
            weight = layer.state_to_state.weight.permute(0, 2, 1).reshape(4 * hid, k * hid)  # over (k, h) patches
            self.layers.append((conv, stream_cache, states, cells, weight, k))

    def layer_states(self, n, stream, i, j):
        conv, stream_cache, states, cells, weight, k = self.layers[n]
        conv.store(stream_cache, i, j, stream)
        above = states[:, i, j:j + k].reshape(self.batch, -1)  # h of row i - 1, columns j - k//2 .. j + k//2
        gates = conv(stream_cache, i, j) + F.linear(above, weight)  # (B, 4h)
        bias = self.bias(n, i, j)
        if bias is not None:
            gates = gates + bias
        h, c = lstm_update(gates, cells[:, i, j], dim=-1)
        states[:, i + 1, j + k // 2] = h
        cells[:, i + 1, j] = c
        return h


class DiagonalBiLSTMStepper(RecurrentStepper):
    def __init__(self, model, batch: int, **conditions):
        super().__init__(model, batch, **conditions)
        self.layers = []
        for layer in model.lstm_layers:
            hid = layer.hidden
            weight_in, bias_in = linear_of(layer.input_to_state)  # (8h, 2h): [left-to-right 4h | right-to-left 4h]
            # Per direction, the (4h, 2h) state-to-state matrix acting on [state above, state beside].
            ss = layer.state_to_state.weight.view(2, 4 * hid, hid, 2).permute(0, 1, 3, 2).reshape(2, 4 * hid, 2 * hid)
            caches = dict(
                stream=self.like.new_zeros(batch, self.height, self.width, 2 * hid),
                # Left-to-right: a zero row on top and a zero column on the left. Right-to-left: a zero row on top
                # and a zero column on the right.
                ltr_h=self.like.new_zeros(batch, self.height + 1, self.width + 1, hid),
                ltr_c=self.like.new_zeros(batch, self.height, self.width + 1, hid),
                rtl_h=self.like.new_zeros(batch, self.height + 1, self.width + 1, hid),
                rtl_c=self.like.new_zeros(batch, self.height, self.width + 1, hid),
            )
            self.layers.append((hid, weight_in, bias_in, ss, caches))

    def layer_states(self, n, stream, i, j):
        hid, weight_in, bias_in, ss, caches = self.layers[n]
        caches["stream"][:, i, j] = stream
        gates = F.linear(stream, weight_in[:4 * hid], bias_in[:4 * hid])  # left-to-right only
        bias = self.bias(n, i, j)
        if bias is not None:
            gates = gates + bias[:, :4 * hid]
        beside = torch.cat([caches["ltr_h"][:, i, j + 1], caches["ltr_h"][:, i + 1, j]], dim=1)  # [above, left]
        h, c = lstm_update(gates + F.linear(beside, ss[0]), caches["ltr_c"][:, i, j], dim=-1)
        caches["ltr_h"][:, i + 1, j + 1] = h
        caches["ltr_c"][:, i, j + 1] = c
        # The right-to-left states reach row i from row i - 1 (the down-shift); row -1 is the zero row on top.
        return h + caches["rtl_h"][:, i, j]

    def end_row(self, x, i):
        """Row i is complete: run the right-to-left direction along it, for every layer."""
        for n, (hid, weight_in, bias_in, ss, caches) in enumerate(self.layers):
            gates_row = F.linear(caches["stream"][:, i], weight_in[4 * hid:], bias_in[4 * hid:])  # (B, W, 4h)
            bias = self.bias(n, i, slice(None))
            if bias is not None:
                gates_row = gates_row + bias[:, :, 4 * hid:]
            h_row, c_row = caches["rtl_h"], caches["rtl_c"]
            for j in reversed(range(self.width)):
                beside = torch.cat([h_row[:, i, j], h_row[:, i + 1, j + 1]], dim=1)  # [above, right]
                h, c = lstm_update(gates_row[:, j] + F.linear(beside, ss[1]), c_row[:, i, j + 1], dim=-1)
                h_row[:, i + 1, j] = h
                c_row[:, i, j] = c


STEPPERS = {"pixelcnn": PixelCNNStepper, "row_lstm": RowLSTMStepper, "diagonal_bilstm": DiagonalBiLSTMStepper}
