"""What the integer Row LSTM and Diagonal BiLSTM share: the LSTM cell in fixed point, and the stack around it.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), equation 3, in integers:

    [o, f, i, g] = sigmoid(pre_o, pre_f, pre_i), tanh(pre_g)    tables at input exponent T_IN, 15-bit outputs
    c = f . c_prev + i . g                                      fixed point, exponent C_EXP, clamped to +-C_BOUND
    h = o . tanh(c)                                             exponent H_EXP (15): h in [-1, 1]

The pre-activations are the exact sum of the input-to-state map and the state-to-state taps, rescaled once to the
tables' input exponent (:class:`.ops.Gates`). Every product of two 15-bit fractions is an exact integer below
2**46, rescaled by round half up: no float rounding anywhere, and no calibration either (the cell's exponents are
fixed). The stack (a 7 x 7 mask-A input, each layer's 1 x 1 output map, residual and skip connections, the head) is
that of :mod:`pixelrnn.models.recurrent`, written once for both passes as the PixelCNN's is; each family provides
its layer's full-map recurrence and its step-wise form.
"""

from __future__ import annotations

import torch

from .arith import Fixed, rescale, rescale_
from .layers import conditioning, head
from .model import IntegerModel
from .network import Network
from .passes import FullMap, PixelCaches, at_pixel
from .tables import lookup

T_IN = 10  # the sigmoid and tanh tables read integers in units of 2**-10
T_OUT = 15  # and give 15-bit fractions: sigmoid in [0, 2**15], tanh in [-2**15, 2**15]
H_EXP = 15  # h = o . tanh(c) in [-1, 1]
C_EXP = 15  # the cell state's resolution
C_BOUND = 2**30 - 1  # |c| below 2**15 (real), so f . c stays below 2**45
GATE_BOUND = 2**20  # pre-activations are clamped far beyond the tables' ends (which clamp them again)
H0_BOUND = 2**20  # a learned initial state h_0 (not squashed by a tanh) may lie beyond [-1, 1]: up to 32


def lstm_cell(pre: torch.Tensor, cell: torch.Tensor, sigmoid: torch.Tensor,
              tanh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Equation 3 on integers: pre-activations [o, f, i, g] (..., 4h) at exponent T_IN and the previous cell state
    (..., h) at C_EXP -> (h at H_EXP, c at C_EXP)."""
    hid = pre.shape[-1] // 4
    gates = lookup(sigmoid, pre[..., :3 * hid])  # (..., 3h): o, f, i as 15-bit fractions
    o, f, i = gates[..., :hid], gates[..., hid:2 * hid], gates[..., 2 * hid:]
    g = lookup(tanh, pre[..., 3 * hid:])
    c = rescale_(torch.addcmul(f * cell, i, g), T_OUT + T_OUT - C_EXP, C_BOUND)  # products at exponent 30
    squashed = lookup(tanh, rescale(c, C_EXP - T_IN, GATE_BOUND))
    h = rescale_(squashed.mul_(o), T_OUT + T_OUT - H_EXP, 2**H_EXP)
    return h, c


class IntegerRecurrent(IntegerModel):
    """The stack of :class:`pixelrnn.models.recurrent.RecurrentPixelModel` in integers; subclasses give
    ``layer_map(net, k, stream, bias)`` (a whole map) and ``layer_steps(k, batch, caches)`` (one pixel)."""

    def body(self, net: Network, conv, layer, u: Fixed, biases: list[Fixed | None]) -> Fixed:
        """The network on the image integers ``u`` (a map or one pixel); ``layer(k, stream, bias)`` runs LSTM layer
        k on its input: logits (..., C*K)."""
        config = self.config
        stream = conv("input", u, divisor=self.levels - 1, in_bound=self.levels - 1)
        skips = []
        for k in range(config["layers"]):
            out = net.linear(f"outputs.{k}", layer(k, stream, biases[k]))  # (..., h) states -> (..., 2h)
            stream = net.add(f"residual.{k}", stream, out) if config["residual"] else out
            skips.append((f"skips.{k}", out))
        return head(net, net.linear_sum("skips", skips) if config["skip"] else stream)

    def input_to_state(self, net: Network, k: int, stream: Fixed, bias: Fixed | None, conv=None) -> Fixed:
        """Layer k's input-to-state map (a map, or with ``conv`` one pixel), plus its conditioning bias."""
        name = f"lstm_layers.{k}.input_to_state"
        gates = net.linear(name, stream) if conv is None else conv(name, stream)
        return gates if bias is None else net.add(f"lstm_layers.{k}.conditioned", gates, bias)

    def logits(self, x, y=None, context: Fixed | None = None, net: Network | None = None):
        net = self.net if net is None else net
        u = Fixed(self.to_inputs(x), 0)  # (B, H, W, C)
        biases = conditioning(net, self.config, y, context, self.config["layers"])

        def layer(k, stream, bias):
            return self.layer_map(net, k, stream, bias)

        return self.unfold(self.body(net, FullMap(net).conv, layer, u, biases).values)  # (B, H, W, C, K)

    def stepper(self, batch, y=None, context: Fixed | None = None):
        return RecurrentStepper(self, batch, y, context)

    def layer_map(self, net: Network, k: int, stream: Fixed, bias: Fixed | None) -> Fixed:  # pragma: no cover
        raise NotImplementedError

    def layer_steps(self, k: int, batch: int, caches: PixelCaches):  # pragma: no cover - abstract
        raise NotImplementedError

    def step_bytes(self) -> int:
        _, height, width = self.image_shape
        hidden = self.config["hidden"]
        per_layer = 2 * (height + 1) * (width + 2) * hidden + height * width * 8 * hidden  # states, cells, a row
        return super().step_bytes() + 8 * 2 * self.config["layers"] * per_layer


class RecurrentStepper:
    """:class:`IntegerRecurrent` one pixel at a time: the input layer and the input-to-state maps read caches of
    their inputs, each LSTM layer keeps its states (``layer_steps``)."""

    def __init__(self, model: IntegerRecurrent, batch: int, y, context: Fixed | None):
        self.model = model
        _, height, width = model.image_shape
        self.biases = conditioning(model.net, model.config, y, context, model.config["layers"])  # maps, once
        self.caches = PixelCaches(model.net, batch, height, width, model.device)
        self.layers = [model.layer_steps(k, batch, self.caches) for k in range(model.config["layers"])]

    def logits(self, x, i, j):
        model = self.model
        u = Fixed(model.to_inputs(x[:, :, i, j]), 0)  # (B, C): the pixel as its channels are known so far
        biases = [at_pixel(b, i, j) for b in self.biases]

        def layer(k, stream, bias):
            return self.layers[k].at(stream, i, j, bias)

        return model.unfold(model.body(model.net, self.caches.at(i, j).conv, layer, u, biases).values)

    def commit(self, x, i, j):
        self.caches.store("input", self.model.to_inputs(x[:, :, i, j]), i, j)

    def end_row(self, x, i):
        for layer in self.layers:
            layer.end_row(i)
