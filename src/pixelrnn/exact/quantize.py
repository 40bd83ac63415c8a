"""Float model -> integer model, deterministically: the same checkpoint and calibration images give the same
integers on any machine.

In the manner of Ballé, Johnston and Minnen, "Integer networks for data compression with latent-variable models"
(ICLR 2019), after training and with power-of-two scales:

- weights: each tensor (a masked weight, with the mask applied; a bias; a class embedding) is quantised exactly from
  its stored float values: t from max|w| (``frexp``, exact), then round-half-even of w * 2**t (exact IEEE), so that
  |w * 2**t| < 2**(bits - 1). A bias is quantised at its layer's accumulator exponent. The first layer's weights
  carry the 1/(K-1) of the float model's input scaling (one correctly rounded IEEE division).
- activations: the integer network itself runs on the calibration images, layer by layer; each layer's output
  exponent is the finest at which the largest accumulator met fits the activation bits with ``headroom_bits`` to
  spare (:func:`.arith.choose_exp`, integer arithmetic). Values beyond are clamped, as every later input is.
- every layer is proved exact before it is used (:mod:`.arith`), so a layer that could leave the exact range is
  refused when it is made, never met while decoding.

Calibration images (:func:`generated_images`): N images made by a fixed integer recipe (flat regions, rectangles
and noise), not a data set, so that the integer model is a function of the float weights alone: any machine that
computes it again, with or without the training data, gets the same integers, and a file written through the Python
API, the command line or the app decodes through any of them. On the shipped Fashion-MNIST PixelCNN they give the
same code length as the first 64 training images (2.78952 against 2.78954 bits/dim on 160 test images): with 16-bit
activations and a bit of headroom, the scales need only the right order of magnitude. ``quantize`` takes other
images too, and records which were used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..masks import MaskedConv2d
from .arith import Fixed, align, bound_of, choose_exp, quantize_at, quantize_tensor
from .model import IntegerModel, Settings
from .network import Network
from .ops import Add, Embedding, Gates, Initial, Linear, LinearSum, Table
from .recurrent import C_BOUND, C_EXP, GATE_BOUND, H0_BOUND, H_EXP, T_IN, T_OUT
from .tables import sigmoid_table, tanh_table


def conv_taps(module: nn.Module) -> tuple[torch.Tensor, tuple[tuple[int, int], ...], torch.Tensor | None]:
    """A (masked) 'same' convolution as (weight (taps * in, out), taps, bias), keeping the taps its mask keeps.

    A transposed convolution whose stride is its kernel f (the multi-scale model's upsampling) is a 1 x 1 map to
    f * f * out features, ordered (row a, column b, feature) of each f x f block it paints.
    """
    if type(module) is nn.ConvTranspose2d:
        return _upsampling(module)
    if not isinstance(module, nn.Conv2d) or type(module) not in (nn.Conv2d, MaskedConv2d):
        raise TypeError(f"no integer form for {type(module).__name__}")
    kh, kw = module.kernel_size
    if module.stride != (1, 1) or module.dilation != (1, 1) or module.groups != 1 or \
            tuple(module.padding) != (kh // 2, kw // 2) or module.padding_mode != "zeros":
        raise TypeError(f"no integer form for this convolution ({module})")
    if isinstance(module, MaskedConv2d):
        weight, mask = module.masked_weight(), module.mask
    else:
        weight, mask = module.weight, torch.ones_like(module.weight)
    weight, mask = weight.detach().cpu(), mask.detach().cpu()
    taps = tuple((ky - kh // 2, kx - kw // 2) for ky in range(kh) for kx in range(kw) if mask[:, :, ky, kx].any())
    if not taps:
        raise TypeError(f"the convolution {module} keeps no tap")
    rows = torch.cat([weight[:, :, ky + kh // 2, kx + kw // 2].t() for ky, kx in taps], dim=0)  # (taps * in, out)
    return rows, taps, None if module.bias is None else module.bias.detach().cpu()


def _upsampling(module: nn.ConvTranspose2d):
    f = module.kernel_size
    if f[0] != f[1] or module.stride != f or module.padding != (0, 0) or module.output_padding != (0, 0) or \
            module.dilation != (1, 1) or module.groups != 1:
        raise TypeError(f"no integer form for this transposed convolution ({module})")
    weight = module.weight.detach().cpu()  # (in, out, f, f)
    rows = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)  # (in, f * f * out)
    bias = None if module.bias is None else module.bias.detach().cpu().repeat(f[0] * f[1])
    return rows, ((0, 0),), bias


class Builder:
    """Makes each integer operation from the float module of its name, and calibrates its output exponent."""

    def __init__(self, model: nn.Module, settings: Settings):
        self.modules = dict(model.named_modules())
        self.settings = settings
        self.act_bound = bound_of(settings.act_bits)

    def module(self, name: str) -> nn.Module:
        if name not in self.modules:
            raise KeyError(f"the float model has no module {name}")
        return self.modules[name]

    def linear(self, name: str, in_exp: int, relu: bool, divisor: int, in_bound: int | None, out_exp: int | None,
               bound: int | None) -> Linear:
        weight, taps, bias = conv_taps(self.module(name))
        w, t = quantize_tensor(weight, self.settings.weight_bits, divisor)
        b = None if bias is None else quantize_at(bias, in_exp + t)
        op = Linear(w, b, taps, in_exp, t, out_exp, bound or self.act_bound, in_bound or self.act_bound, relu)
        op.check(name)
        return op

    def linear_sum(self, name: str, terms: list[tuple[str, Fixed]]) -> LinearSum:
        weights, biases, in_exps, w_exps = [], [], [], []
        for module_name, q in terms:
            weight, taps, bias = conv_taps(self.module(module_name))
            if taps != ((0, 0),):
                raise TypeError(f"{module_name} is not a 1 x 1 map")
            w, t = quantize_tensor(weight, self.settings.weight_bits)
            weights.append(w)
            biases.append(None if bias is None else quantize_at(bias, q.exp + t))
            in_exps.append(q.exp)
            w_exps.append(t)
        op = LinearSum(weights, biases, in_exps, w_exps, None, self.act_bound, self.act_bound)
        op.check(name)
        return op

    def add(self, name: str, qs: tuple[Fixed, ...], in_bound: int | None = None) -> Add:
        op = Add(tuple(q.exp for q in qs), None, self.act_bound, in_bound or self.act_bound)
        op.check(name)
        return op

    def gates(self, name: str, states: Fixed, added: Fixed, module_name: str, taps: int, direction: int) -> Gates:
        """An LSTM layer's state-to-state taps (a Conv1d: one direction of its groups) over ``taps`` states."""
        module = self.module(module_name)
        groups = module.groups
        weight = module.weight.detach().cpu()  # (out, in / groups, k)
        per_group = weight.view(groups, weight.shape[0] // groups, weight.shape[1], weight.shape[2])[direction]
        if per_group.shape[2] != taps:
            raise TypeError(f"{module_name} has {per_group.shape[2]} taps, not {taps}")
        rows = torch.cat([per_group[:, :, u].t() for u in range(taps)], dim=0)  # (taps * h, 4h), tap-major
        w, t = quantize_tensor(rows, self.settings.weight_bits)
        op = Gates(w, states.exp, t, added.exp, T_IN, GATE_BOUND, H0_BOUND, self.act_bound)
        op.check(name)
        return op

    def initial(self, name: str, module_name: str) -> Initial:
        """An LSTM layer's initial states (learned, or zero), per direction, as the fixed-point cell reads them."""
        layer = self.module(module_name)
        h0, c0 = layer.initial_state(layer.input_to_state.weight)
        hid = layer.hidden
        # A cell's h lies in [-1, 1]; a learned initial h may lie beyond, up to H0_BOUND (32 in real terms).
        hidden = quantize_at(h0.reshape(-1, hid), H_EXP).clamp_(-H0_BOUND, H0_BOUND)
        cell = quantize_at(c0.reshape(-1, hid), C_EXP).clamp_(-C_BOUND, C_BOUND)
        op = Initial(hidden, cell, H_EXP, C_EXP)
        op.check(name)
        return op

    def table(self, function: str) -> Table:
        make = sigmoid_table if function == "sigmoid" else tanh_table
        op = Table(make(T_IN, T_OUT), function, T_IN, T_OUT)
        op.check(f"tables.{function}")
        return op

    def embedding(self, name: str) -> Embedding:
        module = self.module(name)
        bits = min(self.settings.weight_bits, self.settings.act_bits)  # its vectors enter sums of activations
        table, t = quantize_tensor(module.weight, bits)
        op = Embedding(table, t)
        op.check(name)
        return op

    def _fix(self, name: str, op, acc: torch.Tensor, acc_exp: int, positive: bool = False) -> None:
        """Fix the output exponent of ``op`` from its exact accumulators ``acc`` on the calibration images."""
        top = acc.clamp_min(0).max() if positive else acc.abs().max()
        if op.out_exp is None:
            op.out_exp = choose_exp(int(top) if acc.numel() else 0, acc_exp, self.settings.act_bits,
                                    self.settings.headroom_bits)
        op.check(name)

    def calibrate(self, name: str, op: Linear, acc: torch.Tensor) -> None:
        self._fix(name, op, acc, op.acc_exp, positive=op.relu)

    def calibrate_sum(self, name: str, op: LinearSum, terms: list[tuple[str, Fixed]]) -> None:
        total = None
        for w, b, i, t, (_, q) in zip(op.weights, op.biases, op.in_exps, op.w_exps, terms):
            x = q.values.reshape(-1, q.values.shape[-1])
            part = (x @ w if b is None else torch.addmm(b, x, w)) * 2.0 ** (op.acc_exp - i - t)
            total = part if total is None else total + part
        self._fix(name, op, total, op.acc_exp)

    def calibrate_add(self, name: str, op: Add, qs) -> None:
        acc, top = align(list(qs))
        self._fix(name, op, acc, top)


def calibrate(family: type[IntegerModel], model, images: torch.Tensor, labels: torch.Tensor | None,
              settings: Settings, info: dict[str, Any], run) -> IntegerModel:
    """Build ``family``'s integer form of ``model`` by running it on ``images``: ``run(integer, net, x, y)`` is the
    family's full pass with a building network."""
    net = Network(builder=Builder(model, settings))
    integer = family(model.config, settings, net.ops, info)
    y = None
    if model.settings.num_classes:
        y = labels if labels is not None else torch.arange(len(images)) % model.settings.num_classes
    with torch.no_grad():
        run(integer, net, images.long().cpu(), y)
    integer.net = Network(net.ops)  # done building: an unknown operation is now an error
    return integer


def _mix(state: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64: a fixed, portable integer hash (numpy's integer wrapping is defined)."""
    z = state + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def generated_images(count: int, image_shape: tuple[int, int, int], levels: int) -> torch.Tensor:
    """``count`` images from a fixed integer recipe (no random generator whose stream could change): per image a
    background, a few rectangles of constant values and some noise, like the flat regions and edges of real images.
    """
    c, h, w = image_shape
    with np.errstate(over="ignore"):
        images = np.zeros((count, c, h, w), dtype=np.int64)
        counter = np.uint64(1)
        for n in range(count):
            draws = _mix(np.arange(counter, counter + np.uint64(64 + c * h * w), dtype=np.uint64))
            counter += np.uint64(64 + c * h * w)
            values = (draws % np.uint64(levels)).astype(np.int64)
            image = np.broadcast_to(values[:c, None, None], (c, h, w)).copy()  # background
            for r in range(int(draws[8] % np.uint64(4)) + 1):
                top, left = int(draws[9 + 4 * r] % np.uint64(h)), int(draws[10 + 4 * r] % np.uint64(w))
                bottom = top + 1 + int(draws[11 + 4 * r] % np.uint64(h))
                right = left + 1 + int(draws[12 + 4 * r] % np.uint64(w))
                image[:, top:bottom, left:right] = values[3 + r % 4]
            noisy = (draws[64:] % np.uint64(4) == 0).reshape(c, h, w)  # a quarter of the values: noise
            image[noisy] = values[64:].reshape(c, h, w)[noisy]
            images[n] = image
    return torch.from_numpy(images)
