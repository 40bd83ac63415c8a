"""What every PixelRNN-family model shares: its config, input scaling, likelihood, sampling and completion.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 2: a model maps an image to one
K-way softmax per value, p(x) = prod_i p(x_i,R | x_<i) p(x_i,G | x_<i, x_i,R) p(x_i,B | x_<i, x_i,R, x_i,G).
A model here is only the network (image in, logits out); :mod:`pixelrnn.distributions` turns logits into
likelihoods and samples, and :mod:`pixelrnn.generate` holds the one sampling loop every model uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .. import distributions
from ..errors import ConfigError, PixelRNNError
from ..masks import GROUPINGS


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has. Subclasses add their own, each with the paper's default."""

    image_shape: tuple[int, int, int]
    levels: int
    grouping: str = "contiguous"  # how features map to R, G, B groups; the paper does not say (masks.py)
    num_classes: int | None = None  # class-conditional: a learned per-class bias in every layer
    context_channels: int | None = None  # conditioned on a (B, c, H, W) map, e.g. the multi-scale model's

    def __post_init__(self):
        shape = tuple(int(s) for s in self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"image_shape must be (C, H, W) with positive sizes, not {self.image_shape}")
        if shape[0] not in (1, 3):
            raise ConfigError(f"images must have 1 or 3 channels, not {shape[0]}")
        if int(self.levels) < 2:
            raise ConfigError(f"levels must be at least 2, not {self.levels}")
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)}, not {self.grouping!r}")
        for name in ("num_classes", "context_channels"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{f.name} must be a positive integer, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


class AutoregressiveModel(nn.Module):
    """Base class: subclasses set ``name`` and ``Config`` and implement ``forward``."""

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.cfg.image_shape

    @property
    def levels(self) -> int:
        return self.cfg.levels

    @property
    def config(self) -> dict[str, Any]:
        """A plain, JSON-able description; ``pixelrnn.build_model(**config)`` rebuilds the model."""
        return {"model": self.name, **self.cfg.to_dict()}

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def make_conditioning(self, widths: list[int]) -> None:
        """Create the conditioning biases of a model whose conditioned layers have these input-to-state widths.

        Class conditioning adds a learned vector per class to every layer's input-to-state map (zero at first, so
        training starts from the unconditional model); a context map (B, c, H, W) reaches every layer through its
        own unmasked 1 x 1 convolution. Neither sees any pixel of the image being modelled, so both keep the model
        causal and normalised for each condition.
        """
        if self.cfg.num_classes:
            self.class_bias = nn.ModuleList(nn.Embedding(self.cfg.num_classes, w) for w in widths)
            for embedding in self.class_bias:
                nn.init.zeros_(embedding.weight)
        if self.cfg.context_channels:
            self.context_bias = nn.ModuleList(nn.Conv2d(self.cfg.context_channels, w, 1) for w in widths)

    def layer_biases(self, y: torch.Tensor | None, context: torch.Tensor | None) -> list[torch.Tensor | None]:
        """Per conditioned layer, the bias (B, width, H or 1, W or 1) to add to its input-to-state map, or None."""
        if y is not None and not self.cfg.num_classes:
            raise PixelRNNError("this model is not class-conditional; build it with num_classes=N to pass labels")
        if context is not None and not self.cfg.context_channels:
            raise PixelRNNError("this model takes no context map")
        if y is not None:
            y = torch.as_tensor(y, device=self.device).long().reshape(-1)
            if y.min() < 0 or y.max() >= self.cfg.num_classes:
                raise PixelRNNError(f"class labels must lie in [0, {self.cfg.num_classes}), not {y.tolist()[:8]}")
        count = len(self.class_bias) if self.cfg.num_classes else len(getattr(self, "context_bias", []))
        biases: list[torch.Tensor | None] = [None] * count
        for k in range(count):
            if y is not None:
                biases[k] = self.class_bias[k](y)[:, :, None, None]
            if context is not None:
                part = self.context_bias[k](context.to(self.dtype))
                biases[k] = part if biases[k] is None else biases[k] + part
        return biases

    def check_images(self, x: torch.Tensor) -> None:
        """Raise a clear error for images that this model cannot score."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise PixelRNNError(
                f"images of shape {tuple(x.shape[1:])} do not fit this model, which was built for "
                f"{self.image_shape} (C, H, W); resize the images or use a model trained on this size"
            )
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise PixelRNNError(f"images must hold integer values in [0, {self.levels}), not {x.dtype}")

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Integer values in [0, K) to reals in [-1, 1], in the parameters' dtype (the paper scales and centres)."""
        return x.to(self.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        """int64 [B, C, H, W] (and class labels [B] for class-conditional models) -> logits [B, K, C, H, W]."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (or log p(x | y)) in nats, float [B]: the sum of all C*H*W conditionals."""
        return distributions.log_prob(self(x, y), x)

    def order(self) -> list[tuple[int, int, int]]:
        """(channel, row, column) of every value in the order the model generates them: raster, then R, G, B."""
        c, h, w = self.image_shape
        return [(k, i, j) for i in range(h) for j in range(w) for k in range(c)]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        method: str = "fast",
        progress: bool = False,
        y: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` images, int64 [n, C, H, W] (of class ``y``, for class-conditional models)."""
        from ..generate import sample

        return sample(self, n, temperature=temperature, generator=generator, method=method, progress=progress, y=y)

    @torch.no_grad()
    def complete(
        self,
        x: torch.Tensor,
        known: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        method: str = "fast",
        progress: bool = False,
        y: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Keep ``x`` where ``known`` (bool, broadcastable to x) is True and sample the rest in model order."""
        from ..generate import complete

        return complete(self, x, known, temperature=temperature, generator=generator, method=method,
                        progress=progress, y=y)
