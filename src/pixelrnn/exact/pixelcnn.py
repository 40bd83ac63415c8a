"""The PixelCNN of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016, sections 3.4-3.5) in exact
integers: the network of :mod:`pixelrnn.models.pixelcnn`, layer for layer, written once for both passes.

    stream = input(image)                                      7 x 7, mask A
    per block k: stream += bias_k (class and/or context)       the conditioning, when the model has it
                 out = expand(relu(conv(relu(reduce(relu(stream))))))
                 stream = stream + out   (residual)             skips_k(out) joins the skip sum (skip)
    logits = head.logits(relu(head.hidden(relu(skip sum or stream))))

Every linear layer and every sum is an integer operation of :mod:`.ops` named after its float module; the
k x k layers go through ``conv`` (a whole map, or one pixel from a cache: :mod:`.passes`). The stepper evaluates
the same function at one pixel, so the full pass and the step-wise pass give equal integers.
"""

from __future__ import annotations

from .arith import Fixed, relu
from .layers import conditioning, head
from .model import IntegerModel
from .network import Network
from .passes import FullMap, PixelCaches, at_pixel


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
        return PixelCNNStepper(self, batch, y, context)


class PixelCNNStepper:
    """:class:`IntegerPixelCNN` one pixel at a time: each k x k layer reads a cache of its input."""

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
