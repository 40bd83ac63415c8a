"""The PixelCNN of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016, sections 3.4-3.5) in exact
integers: the network of :mod:`pixelrnn.models.pixelcnn`, layer for layer, written once for both passes.

    stream = input(image)                                      7 x 7, mask A
    per block k: stream += bias_k (class and/or context)       the conditioning, when the model has it
                 out = expand(relu(conv(relu(reduce(relu(stream))))))
                 stream = stream + out   (residual)             skips_k(out) joins the skip sum (skip)
    logits = head.logits(relu(head.hidden(relu(skip sum or stream))))

Every linear layer and every sum is an integer operation of :mod:`.ops` named after its float module; the
k x k layers go through ``conv`` (a whole map, or one pixel from a cache: :mod:`.passes`). The reference stepper
evaluates the same function at one pixel, so the full pass and the step-wise pass give equal integers; the decoder's
stepper (:class:`FastPixelCNNStepper`) runs the same operations with their lookups and buffers made once, and is
tested equal to both.
"""

from __future__ import annotations

import torch

from .arith import DTYPE, Fixed, relu
from .layers import conditioning, head
from .model import IntegerModel
from .network import Network
from .passes import FullMap, PixelCaches, at_pixel
from .steps import AddAt, HeadAt, OneByOne, RowWindows, conditioning_sum, prepared_linear, with_one


class IntegerPixelCNN(IntegerModel):
    """:class:`pixelrnn.models.pixelcnn.PixelCNN` in integers."""

    family = "pixelcnn"
    cpu_pass_bytes = 4 << 20  # few operations a pass, each a pass over memory: small passes stay in the caches

    def body(self, net: Network, conv, u: Fixed, biases: list[Fixed | None]) -> Fixed:
        """The network on the image integers ``u`` (a map, or one pixel): logits (..., C*K)."""
        levels, config = self.levels, self.config
        stream = conv("input", u, divisor=levels - 1, in_bound=levels - 1)
        skips = []
        for k in range(config["layers"]):
            if biases[k] is not None:
                stream = net.add(f"blocks.{k}.conditioned", stream, biases[k])
            h = net.linear(f"blocks.{k}.reduce", relu(stream), relu=True)
            h = conv(f"blocks.{k}.conv", h, relu=True)
            out = net.linear(f"blocks.{k}.expand", h)
            stream = net.add(f"blocks.{k}.residual", stream, out) if config["residual"] else out
            skips.append((f"skips.{k}", out))
        return head(net, net.linear_sum("skips", skips) if config["skip"] else stream)

    def logits(self, x, y=None, context: Fixed | None = None, net: Network | None = None):
        net = self.net if net is None else net
        u = Fixed(self.to_inputs(x), 0)  # (B, H, W, C)
        biases = conditioning(net, self.config, y, context, self.config["layers"])
        return self.unfold(self.body(net, FullMap(net).conv, u, biases).values)  # (B, H, W, C, K)

    def stepper(self, batch, y=None, context: Fixed | None = None):
        return FastPixelCNNStepper(self, batch, y, context)

    def reference_stepper(self, batch, y=None, context: Fixed | None = None):
        """The step-wise pass written once with the full pass (:meth:`body`): what the fast one is tested against."""
        return PixelCNNStepper(self, batch, y, context)


class PixelCNNStepper:
    """:class:`IntegerPixelCNN` one pixel at a time, through :meth:`IntegerPixelCNN.body`: each k x k layer reads a
    cache of its input. The reference of :class:`FastPixelCNNStepper`."""

    def __init__(self, model: IntegerPixelCNN, batch: int, y, context: Fixed | None):
        self.model = model
        _, height, width = model.image_shape
        self.biases = conditioning(model.net, model.config, y, context, model.config["layers"])  # whole maps, once
        self.caches = PixelCaches(model.net, batch, height, width, model.device)

    def logits(self, x, i, j):
        u = Fixed(self.model.to_inputs(x[:, :, i, j]), 0)  # (B, C): the pixel as its channels are known so far
        biases = [at_pixel(b, i, j) for b in self.biases]
        return self.model.unfold(self.model.body(self.model.net, self.caches.at(i, j).conv, u, biases).values)

    def commit(self, x, i, j):
        """The pixel's values are all known: the first layer's cache gets them (later pixels read every channel)."""
        self.caches.store("input", self.model.to_inputs(x[:, :, i, j]), i, j)

    def end_row(self, x, i):
        pass


class FastPixelCNNStepper:
    """:class:`PixelCNNStepper` in fewer operations: what the decoder runs; tested equal to it, integer for integer.

    The network of :meth:`IntegerPixelCNN.body` with its operations looked up, checked and prepared once instead of
    at every pixel, writing into buffers made once: each k x k layer reads a :class:`RowWindows`; the 1 x 1 layers
    carry their biases on a constant 1 of their input (:class:`OneByOne`); the blocks' outputs lie side by side in
    one buffer, which the skip connections' sum reads as it is; the residual sums run in place on the stream. Every
    product uses the prepared weights of the reference pass, and every rounding its rule: the integers of the full
    pass.
    """

    def __init__(self, model: IntegerPixelCNN, batch: int, y, context: Fixed | None):
        net, config, device = model.net, model.config, model.device
        self.model, self.layers = model, config["layers"]
        self.channels, _, width = model.image_shape
        self.residual, self.skip = config["residual"], config["skip"]
        self.biases = conditioning(net, config, y, context, self.layers)  # whole maps, once

        def empty(features: int) -> torch.Tensor:
            return torch.empty(batch, features, dtype=DTYPE, device=device)

        self.input = RowWindows("input", prepared_linear(net, "input", 0, False), batch, width, device)
        exp = self.input.op.out_exp
        hidden = net.op("blocks.0.reduce").weight.shape[1]
        self.stream = empty(2 * hidden)
        self.relu_stream, self.relu_stream_features = with_one(batch, 2 * hidden, device)
        self.h = empty(hidden)
        self.c, self.c_features = with_one(batch, hidden, device)
        self.outs, outs = with_one(batch, self.layers * 2 * hidden, device)  # the blocks' outputs: the skips' input
        self.blocks = []
        for k in range(self.layers):
            bias_exp = None if self.biases[k] is None else self.biases[k].exp
            conditioned, exp = conditioning_sum(net, f"blocks.{k}.conditioned", exp, bias_exp)
            reduce = OneByOne(prepared_linear(net, f"blocks.{k}.reduce", exp, True))
            conv = RowWindows(f"blocks.{k}.conv", prepared_linear(net, f"blocks.{k}.conv", reduce.op.out_exp, True),
                              batch, width, device)
            expand = OneByOne(prepared_linear(net, f"blocks.{k}.expand", conv.op.out_exp, False))
            residual = AddAt(net, f"blocks.{k}.residual", (exp, expand.op.out_exp)) if self.residual else None
            exp = residual.out_exp if residual else expand.op.out_exp
            self.blocks.append((conditioned, reduce, conv, expand, outs[:, k * 2 * hidden:(k + 1) * 2 * hidden],
                                residual))
        self.head = HeadAt(net, self.skip, [block[3].op.out_exp for block in self.blocks], exp, batch, 2 * hidden,
                           device)

    def logits(self, x, i, j):
        """(B, C, K): the pixel's integer logits as its channels are known so far (a buffer, until the next call)."""
        slot = self.input.slot(i, j)
        if self.input.reads_own_pixel:  # mask A reads a pixel's earlier colours; with one colour, none
            slot.copy_(self.model.to_inputs(x[:, :, i, j]))
        consume = self.channels == 1  # one pass a pixel: its row sums can take its own taps in place
        stream = self.input.finish(j, self.stream, consume)
        last = self.layers - 1
        for k, (conditioned, reduce, conv, expand, out, residual) in enumerate(self.blocks):
            if conditioned is not None:
                conditioned(stream, at_pixel(self.biases[k], i, j).values)
            torch.clamp_min(stream, 0, out=self.relu_stream_features)
            reduce(self.relu_stream, self.h, clamp_out=conv.slot(i, j))
            conv.finish(j, self.c_features, consume)
            if residual is None and not self.skip:
                expand(self.c, stream)  # the block's output is the next block's stream
                continue
            expand(self.c, out)
            if self.skip and k == last:
                break  # the head reads the skips alone: the last residual sum would go nowhere
            if residual is not None:
                residual(stream, out)
            else:
                stream.copy_(out)
        return self.model.unfold(self.head(self.outs, stream))

    def commit(self, x, i, j):
        """The pixel's values are all known: the first layer's cache gets them (later pixels read every channel)."""
        self.input.slot(i, j).copy_(self.model.to_inputs(x[:, :, i, j]))

    def end_row(self, x, i):
        pass
