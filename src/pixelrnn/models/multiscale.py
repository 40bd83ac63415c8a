"""Multi-Scale PixelRNN: "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 3.5.

"One unconditional PixelRNN and one or more conditional PixelRNNs": an unconditional model generates a small
s x s image subsampled from the n x n image (n a multiple of s); a conditional model then generates the rest of the
n x n image. Every layer of the conditional model gets a bias from
the small image: a small convolutional network with a transposed convolution upsamples it to c x n x n, and an
unmasked 1 x 1 convolution per layer maps that to the layer's input-to-state width (for a PixelCNN base, to the
width of the block's input). The bias may see the whole small image, which is generated first.

Subsampling takes the top-left pixel of every f x f block (f = n / s): x_small = x[:, :, ::f, ::f]. Those pixels
are what the first stage generates, so the conditional model does not score them, and the likelihood stays exact:

    log p(x) = log p(x_small) + log p(x without x_small | x_small)

Several scales, ``small=(s_1, ..., s_L)`` with each size dividing the next and n: the model of the s_L x s_L image
is itself a multi-scale model of sizes (s_1, ..., s_(L-1)), so each level is a model of its image conditioned on
the level below, the first is unconditional, and by the identity above, applied level by level,

    log p(x) = log p(x_(s_1)) + sum_(l > 1) log p(x_(s_l) without x_(s_(l-1)) | x_(s_(l-1))) + log p(rest | x_(s_L))

exactly. One size (``small=s`` or ``small=[s]``) is the two-level model, with the same parameter names as ever.

``forward`` returns the logits of the small model at the small image's pixels and those of the conditional model
everywhere else; every likelihood, sampler and the codec then work unchanged. So ``log_prob_per_value`` is one
[B, C, n, n] map of every level's terms: a value whose row and column are multiples of n / s_l is scored by level l
(the coarsest such level), every other one by log p(rest | x_(s_L)). The generation order is the small image in its
own order (coarsest level first), then the other pixels in raster order (``order()``); fast generation (``walk``)
runs the levels' own steppers in that order.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .base import AutoregressiveModel, ModelConfig
from .registry import build_model, register

BASES = ("row_lstm", "diagonal_bilstm", "pixelcnn")


@dataclass(frozen=True)
class MultiScaleConfig(ModelConfig):
    # s: the side (for non-square images, the height) of the small image, or an increasing list of them, one per
    # level below the full image (e.g. [7, 14] for 28 x 28); the paper's 64 x 64 model uses 32 [unsure].
    small: int | tuple[int, ...] = 32
    base: str = "row_lstm"  # the family of every level
    layers: int = 12
    hidden: int = 128
    head: int = 1024
    residual: bool = True
    skip: bool = True
    learn_initial_state: bool = True  # recurrent bases only
    upsample_channels: int = 32  # c: channels of the upsampled small image

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "small", _sizes(self.small))
        _, h, w = self.image_shape
        if self.base not in BASES:
            raise ConfigError(f"base must be one of {', '.join(BASES)}, not {self.base!r}")
        sizes = self.sizes
        if list(sizes) != sorted(set(sizes)):
            raise ConfigError(f"small={list(sizes)}: the sizes of the levels must increase, e.g. small=7,14")
        for size, above in zip(sizes, [*sizes[1:], h]):  # each level's side must fit the level above it
            if not _fits(size, above, w * above // h):
                fits = small_sides(above, w * above // h)
                sides = ", ".join(map(str, fits)) or "none: the height and width share no factor"
                raise ConfigError(f"small={size} does not fit {above} x {w * above // h} images: the small image's "
                                  f"side must divide the height {above} (and the subsampling factor the width "
                                  f"{w * above // h}) and be below {above}; sizes that work: {sides}"
                                  + (f" (e.g. --set small={fits[0]})" if fits else ""))

    @classmethod
    def upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        # Before learned initial states existed, a PixelCNN base ignored ``skip`` (it had no skips): a config
        # without the newer key is of that time.
        if "learn_initial_state" not in values:
            values = {**values, "learn_initial_state": False}
            if values.get("base", cls.base) == "pixelcnn":
                values["skip"] = False
        return values

    @property
    def sizes(self) -> tuple[int, ...]:
        """The sides of the levels below the full image, coarsest first."""
        return (self.small,) if isinstance(self.small, int) else self.small


def parse_sizes(text: str) -> tuple[int, ...] | None:
    """Sizes written as text: "14", "7,14", "[7, 14]" or "(7, 14)"; None if ``text`` is not such a list."""
    parts = text.strip().strip("[]() ").split(",")
    if not all(part.strip().isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def _sizes(small) -> int | tuple[int, ...]:
    """``small`` as one int (one level below the image, as ever) or a tuple of several; "7,14" is read as (7, 14)."""
    if isinstance(small, str):
        small = parse_sizes(small) or small
    sizes = list(small) if isinstance(small, (list, tuple)) else [small]
    if not sizes or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
        raise ConfigError(f"small must be a positive size or an increasing list of them (e.g. 7,14), not {small!r}")
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _fits(side: int, height: int, width: int) -> bool:
    """Whether a small image of this side subsamples a height x width image by a whole factor."""
    return side < height and height % side == 0 and width % (height // side) == 0


def small_sides(height: int, width: int) -> list[int]:
    """The sides of the small image that fit an image of this size, largest first."""
    # The divisors of the height, found up to its square root: a stored config's height can be anything.
    divisors = {d for k in range(1, math.isqrt(height) + 1) if height % k == 0 for d in (k, height // k)}
    return sorted((s for s in divisors if _fits(s, height, width)), reverse=True)


@register
class MultiScale(AutoregressiveModel):
    """Section 3.5: a small image first, then the full image conditioned on it.

    ``small_model`` scores the small image: a model of the family ``base``, or with several sizes a multi-scale
    model of the lower levels. ``conditional``, of the family ``base``, scores the rest.
    """

    name = "multiscale"
    Config = MultiScaleConfig

    def __init__(self, settings: MultiScaleConfig):
        super().__init__(settings)
        channels, height, width = settings.image_shape
        *lower, top = settings.sizes
        self.factor = height // top  # the same in both directions
        options = dict(layers=settings.layers, hidden=settings.hidden, head=settings.head, grouping=settings.grouping,
                       num_classes=settings.num_classes, residual=settings.residual, skip=settings.skip)
        if settings.base != "pixelcnn":
            options.update(learn_initial_state=settings.learn_initial_state)
        small_shape = (channels, height // self.factor, width // self.factor)
        if lower:  # the levels below: a multi-scale model of the small image
            self.small_model = build_model(self.name, small_shape, settings.levels, small=tuple(lower), base=settings.base,
                                           upsample_channels=settings.upsample_channels, **options)
        else:
            self.small_model = build_model(settings.base, small_shape, settings.levels, **options)
        c = settings.upsample_channels
        self.conditional = build_model(settings.base, settings.image_shape, settings.levels, context_channels=c, **options)
        self.upsample = nn.Sequential(
            nn.Conv2d(channels, c, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c, c, self.factor, stride=self.factor), nn.ReLU(),  # s x s -> n x n
            nn.Conv2d(c, c, 3, padding=1),
        )

    def subsample(self, x: torch.Tensor) -> torch.Tensor:
        """The small image: the top-left pixel of every f x f block."""
        return x[:, :, ::self.factor, ::self.factor]

    def context(self, small: torch.Tensor) -> torch.Tensor:
        """The upsampled small image, (B, c, n, n), that biases every layer of the conditional model."""
        return self.upsample(self.small_model.to_inputs(small))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:
            raise ConfigError("the multi-scale model makes its own context from the small image")
        self.check_images(x)
        small = self.subsample(x)
        logits = self.conditional(x, y, self.context(small))  # (B, K, C, n, n)
        # The small image's pixels are scored by the small model alone.
        logits[:, :, :, ::self.factor, ::self.factor] = self.small_model(small, y)
        return logits

    def order(self) -> list[tuple[int, int, int]]:
        f = self.factor
        first = [(k, i * f, j * f) for k, i, j in self.small_model.order()]
        rest = [(k, i, j) for k, i, j in self.conditional.order() if i % f or j % f]
        return first + rest

    def walk(self, x, wants, choose, progress=False, desc="sampling", y=None, context=None, stable=True):
        """Fast generation in two stages: the small image, then the rest given it (see ``AutoregressiveModel.walk``)."""
        if context is not None:
            raise ConfigError("the multi-scale model makes its own context from the small image")
        f = self.factor
        small = self.subsample(x).clone()
        self.small_model.walk(small, lambda c, i, j: wants(c, i * f, j * f),
                              lambda c, i, j, logits: choose(c, i * f, j * f, logits), progress, desc, y=y,
                              stable=stable)
        x[:, :, ::f, ::f] = small
        return self.conditional.walk(x, lambda c, i, j: bool(i % f or j % f) and wants(c, i, j), choose, progress,
                                     desc, y=y, context=self.context(small), stable=stable)
