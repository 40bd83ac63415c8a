"""The Multi-Scale PixelRNN of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016, section 3.5) in
exact integers, over each base family.

As :mod:`pixelrnn.models.multiscale`: the small image (the top-left pixel of every f x f block) comes first, coded by
the small model (a base model, or a multi-scale model of the lower levels); then every other pixel, in raster order,
by the conditional model, whose layers are biased by the upsampled small image (a 3 x 3 convolution, a transposed
f x f convolution of stride f, a 3 x 3 convolution, ReLUs between: all integer maps here). The levels are integer
models of their own families, each with its operations under its float module's prefix (``small_model.``,
``conditional.``), in one integer model.

The full pass scores the small image with the small model and the rest with the conditional model, in one pass
each; the step-wise pass walks the small image first, makes the context from it, then walks the full image with the
conditional model's stepper, running it at the small image's pixels too (their values are known) so that its
caches hold every pixel.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models import build_from_config
from .arith import Fixed
from .diagonal_bilstm import IntegerDiagonalBiLSTM
from .frequencies import coder_weights
from .model import IntegerModel, Settings, raster_walk
from .network import Network
from .ops import Op
from .pixelcnn import IntegerPixelCNN
from .row_lstm import IntegerRowLSTM


def _level_configs(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The float configs of the small model and of the conditional model that the float model of ``config``
    builds (built once from it with fresh weights: the float model is the one place that says how)."""
    model = build_from_config(config)
    return model.small_model.config, model.conditional.config


class IntegerMultiScale(IntegerModel):
    """:class:`pixelrnn.models.multiscale.MultiScale` in integers."""

    family = "multiscale"

    def __init__(self, config: dict[str, Any], settings: Settings, ops: dict[str, Op], info: dict[str, Any],
                 prefix: str = ""):
        super().__init__(config, settings, ops, info, prefix)
        small, conditional = _level_configs(config)
        self.small = _form(small)(small, settings, ops, info, prefix + "small_model.")
        self.conditional = _form(conditional)(conditional, settings, ops, info, prefix + "conditional.")
        self.factor = self.image_shape[1] // self.small.image_shape[1]

    def pass_images(self) -> int:
        """As the conditional model's: its pass over the full-size image is the larger part of the work."""
        return self.conditional.pass_images()

    def place(self, device: torch.device, table: torch.Tensor) -> None:
        super().place(device, table)
        self.small.place(device, table)
        self.conditional.place(device, table)

    def context(self, net: Network, small: torch.Tensor) -> Fixed:
        """The upsampled small image (B, n, n, c) that biases every layer of the conditional model."""
        u = Fixed(self.small.to_inputs(small), 0)  # (B, s, s, C)
        levels = self.levels
        a = net.linear("upsample.0", u, relu=True, divisor=levels - 1, in_bound=levels - 1)
        painted = net.linear("upsample.2", a, relu=True)  # (B, s, s, f * f * c): each pixel paints an f x f block
        b, s_h, s_w, _ = painted.values.shape
        f = self.factor
        blocks = painted.values.view(b, s_h, s_w, f, f, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, s_h * f, s_w * f, -1)
        return net.linear("upsample.4", Fixed(blocks, painted.exp))

    def logits(self, x, y=None, context=None, net: Network | None = None):
        if context is not None:
            raise ValueError("the multi-scale model makes its own context from the small image")
        net = self.net if net is None else net
        f = self.factor
        small = x[:, :, ::f, ::f]
        logits = self.conditional.logits(x, y, context=self.context(net, small), net=net.scope("conditional."))
        # The small image's pixels are scored by the small model alone.
        logits[:, ::f, ::f] = self.small.logits(small, y, net=net.scope("small_model."))
        return logits  # (B, H, W, C, K)

    def order(self) -> list[tuple[int, int, int]]:
        f = self.factor
        first = [(k, i * f, j * f) for k, i, j in self.small.order()]
        rest = [(k, i, j) for k, i, j in self.conditional.order() if i % f or j % f]
        return first + rest

    def ordered_weights(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            logits = self.logits(x.to(self.device), self.check_labels(y, len(x)))  # (B, H, W, C, K)
            order = torch.tensor(self.order(), device=self.device)
            return coder_weights(logits[:, order[:, 1], order[:, 2], order[:, 0]], self.table)  # (B, V, K)

    def walk(self, x, choose, y=None, progress=False, desc="decoding"):
        """The small image in its own order, then the rest given it (see ``IntegerModel.walk``)."""
        f = self.factor
        with torch.inference_mode():  # as IntegerModel.walk; x, made outside, stays an ordinary tensor
            small = x[:, :, ::f, ::f].clone()
            self.small.walk(small, lambda c, i, j, weights: choose(c, i * f, j * f, weights), y, progress, desc)
            x[:, :, ::f, ::f] = small
            y = self.check_labels(y, len(x))
            stepper = self.conditional.stepper(len(x), y, self.context(self.net, small))
            return raster_walk(self.conditional, stepper, x, choose, progress, desc,
                               wants=lambda c, i, j: bool(i % f or j % f))

    def step_bytes(self) -> int:
        return self.small.step_bytes() + self.conditional.step_bytes()


def _form(config: dict[str, Any]) -> type[IntegerModel]:
    """The integer class of a level: the base families, or this one for a multi-scale model of lower levels."""
    forms = {"pixelcnn": IntegerPixelCNN, "row_lstm": IntegerRowLSTM, "diagonal_bilstm": IntegerDiagonalBiLSTM,
             "multiscale": IntegerMultiScale}
    return forms[config["model"]]
