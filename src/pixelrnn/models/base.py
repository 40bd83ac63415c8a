"""What every PixelRNN-family model shares: its config, input scaling, conditioning, likelihood and generation.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 2: a model maps an image to one
K-way softmax per value, p(x) = prod_i p(x_i,R | x_<i) p(x_i,G | x_<i, x_i,R) p(x_i,B | x_<i, x_i,R, x_i,G).
A model here is only the network (image in, logits out); :mod:`pixelrnn.distributions` turns logits into
likelihoods and samples, and :mod:`pixelrnn.generate` holds the one sampling loop every model uses.

Generation reaches a model through these methods of the base class, and nothing else:

- ``model.stepper(batch, y, context)`` returns a :class:`Stepper`, the network evaluated one pixel at a time from
  cached activations (each family writes its own, beside its network);
- ``model.quick_stepper(batch, y, context)``, the same network in quicker arithmetic where a family has one (the
  PixelCNN), equal to the stepper's up to float rounding; by default the stepper itself;
- ``model.walk(x, wants, choose, ..., stable=True)`` visits every value in the model's order with the stepper
  (``stable``: the arithmetic that the codec's float-path files were written with) or the quick one. The default
  walks raster order (:func:`raster_walk`, beside :class:`Stepper`); a model with another order (the multi-scale
  model) overrides ``walk``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributions, generate
from ..errors import ConfigError, PixelRNNError
from ..masks import LAYOUTS, ColourGroups


@functools.cache
def _declared_types(config_class: type) -> dict[str, Any]:
    """Each field's declared type as a type (annotations are strings under ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class)}


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model has. Subclasses add their own, each with the paper's default."""

    image_shape: tuple[int, int, int]
    levels: int
    grouping: str = "contiguous"  # the layout of the colour groups among features; the paper does not say (masks.py)
    num_classes: int | None = None  # class-conditional: a learned per-class bias in every layer
    context_channels: int | None = None  # conditioned on a (B, c, H, W) map, e.g. the multi-scale model's

    # Options added after checkpoints were first written, with the value that gives the model of that time: a
    # stored config without one (written before it existed) rebuilds the same network (see ``upgrade``).
    BEFORE: ClassVar[dict[str, Any]] = {}

    def __post_init__(self):
        shape = tuple(int(s) for s in self.image_shape)
        object.__setattr__(self, "image_shape", shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"image_shape must be (C, H, W) with positive sizes, not {self.image_shape}")
        if shape[0] not in (1, 3):
            raise ConfigError(f"images must have 1 or 3 channels, not {shape[0]}")
        if int(self.levels) < 2:
            raise ConfigError(f"levels must be at least 2, not {self.levels}")
        if self.grouping not in LAYOUTS:
            raise ConfigError(f"grouping must be one of {', '.join(LAYOUTS)}, not {self.grouping!r}")
        for name in ("num_classes", "context_channels"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")
        for name, declared in _declared_types(type(self)).items():
            value = getattr(self, name)
            if declared is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
            # A stored config is JSON anyone can edit: "maybe" or 2 where a switch belongs would read as true.
            if declared is bool and not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, not {value!r}")
            if declared is str and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, not {value!r}")

    @classmethod
    def upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        """A stored config's options (image_shape and levels included) as this version reads them: each option
        the config lacks gets its value from before the option existed (``BEFORE``), not today's default."""
        return {**cls.BEFORE, **values}

    @property
    def colours(self) -> ColourGroups:
        """The colour groups of every masked layer: one per image channel, in the configured layout."""
        return ColourGroups(self.image_shape[0], self.grouping)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


class Stepper:
    """A model evaluated one pixel at a time; generation calls ``logits`` in raster order and ``end_row`` after
    each row.

    ``y`` (class labels) and ``context`` (a map) condition the model as in its full pass: their per-layer biases
    are computed once, for the whole map, and read at each pixel.
    """

    def __init__(self, model: AutoregressiveModel, batch: int, y: torch.Tensor | None = None,
                 context: torch.Tensor | None = None):
        self.model, self.batch = model, batch
        self.channels, self.height, self.width = model.image_shape
        self.like = next(model.parameters())  # new caches take the parameters' dtype and device
        biases = model.layer_biases(y, context)
        self.biases = [None if b is None else b.expand(batch, -1, self.height, self.width) for b in biases] or None

    def bias(self, layer: int, i: int, j: int | slice) -> torch.Tensor | None:
        """The conditioning bias of a layer at pixel (i, j): (B, width), or (B, width, W) for a whole row."""
        if self.biases is None or self.biases[layer] is None:
            return None
        b = self.biases[layer][:, :, i, j]
        return b if isinstance(j, int) else b.transpose(1, 2)

    def logits(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:  # pragma: no cover - abstract
        """(B, K, C): the logits of pixel (i, j) given ``x`` before it (and its own channels before each one)."""
        raise NotImplementedError

    def end_row(self, x: torch.Tensor, i: int) -> None:
        """Called once row i is complete."""


def raster_walk(stepper, x: torch.Tensor, wants, choose, progress: bool = False,
                desc: str = "sampling") -> torch.Tensor:
    """The walk of a model that generates in raster order, driven by its ``stepper`` (``model.walk`` calls it).

    Args:
        stepper: a ``pixelrnn.models.base.Stepper`` for ``len(x)`` images.
        x: int64 [B, C, H, W], filled in place.
        wants: ``wants(c, i, j)``: whether value (c, i, j) is to be chosen.
        choose: ``choose(c, i, j, logits [B, K])``: the values [B] to put there.
    """
    channels, height, width = x.shape[1:]
    pixels = tqdm(total=height * width, desc=desc, unit="pixel", disable=None if progress else True, leave=False)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                wanted = wants(c, i, j)
                # The last channel's pass always runs: it leaves the pixel's final activations in the caches.
                if wanted or c == channels - 1:
                    logits = stepper.logits(x, i, j)[:, :, c]  # (B, K)
                if wanted:
                    x[:, c, i, j] = choose(c, i, j, logits)
            pixels.update(1)
        stepper.end_row(x, i)
    pixels.close()
    return x


class AutoregressiveModel(nn.Module):
    """Base class: subclasses set ``name`` and ``Config`` and implement ``forward`` and ``stepper``.

    A model describes itself twice, for two readers: ``model.settings`` is its frozen, typed ``Config`` dataclass
    (what the code reads: ``model.settings.hidden``), and ``model.config`` is the same as a plain JSON-able dict
    with the family's name (what checkpoints store, and what ``build_model(**config)`` takes).
    """

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]

    def __init__(self, settings: ModelConfig):
        super().__init__()
        self.settings = settings  # the typed settings; ``config`` is their JSON-able form

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.settings.image_shape

    @property
    def levels(self) -> int:
        return self.settings.levels

    @property
    def config(self) -> dict[str, Any]:
        """A plain, JSON-able description; ``pixelrnn.build_model(**config)`` rebuilds the model."""
        return {"model": self.name, **self.settings.to_dict()}

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
        if self.settings.num_classes:
            self.class_bias = nn.ModuleList(nn.Embedding(self.settings.num_classes, w) for w in widths)
            for embedding in self.class_bias:
                nn.init.zeros_(embedding.weight)
        if self.settings.context_channels:
            self.context_bias = nn.ModuleList(nn.Conv2d(self.settings.context_channels, w, 1) for w in widths)

    def check_labels(self, y: torch.Tensor | int | None, batch: int | None = None,
                     values: bool = True) -> torch.Tensor | None:
        """Class labels as int64 [B] on the model's device, or a clear error; None stays None.

        Args:
            y: one label, or one per image.
            batch: when given, one label is repeated for all ``batch`` images, and any other count is an error.
            values: check that every label lies in [0, num_classes); False checks it only where the labels lie on
                the CPU, where reading them costs nothing (on a GPU it would be a host read).
        """
        if y is None:
            return None
        classes = self.settings.num_classes
        if not classes:
            raise ConfigError("this model is not class-conditional; build it with num_classes=N (train it with "
                              "--class-conditional) to pass class labels")
        y = torch.as_tensor(y, device=self.device).long().reshape(-1)
        if batch is not None and len(y) not in (1, batch):
            raise PixelRNNError(f"give one class label, or one per image ({batch}), not {len(y)}")
        if len(y) and (values or y.device.type == "cpu") and (y.min() < 0 or y.max() >= classes):
            raise PixelRNNError(f"class labels must lie in [0, {classes}), i.e. 0..{classes - 1}, "
                                f"not {y.tolist()[:8]}")
        return y if batch is None else y.expand(batch)

    def layer_biases(self, y: torch.Tensor | None, context: torch.Tensor | None) -> list[torch.Tensor | None]:
        """Per conditioned layer, the bias (B, width, H or 1, W or 1) to add to its input-to-state map, or None."""
        # Every forward pass comes here: off the CPU a range check would stop the device at each training step, so
        # there the labels are checked where they enter (the training data once, sampling and completion per call).
        y = self.check_labels(y, values=False)
        if context is not None and not self.settings.context_channels:
            raise PixelRNNError("this model takes no context map")
        count = len(self.class_bias) if self.settings.num_classes else len(getattr(self, "context_bias", []))
        biases: list[torch.Tensor | None] = [None] * count
        for k in range(count):
            if y is not None:
                biases[k] = self.class_bias[k](y)[:, :, None, None]
            if context is not None:
                part = self.context_bias[k](context.to(self.dtype))
                biases[k] = part if biases[k] is None else biases[k] + part
        return biases

    def check_images(self, x: torch.Tensor) -> None:
        """Raise a clear error for images that this model cannot take."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise PixelRNNError(
                f"images of shape {tuple(x.shape[1:])} do not fit this model, which was built for "
                f"{self.image_shape} (C, H, W); resize the images or use a model trained on this size"
            )
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise PixelRNNError(f"images must hold integer values in [0, {self.levels}), not {x.dtype}")

    def check_values(self, x: torch.Tensor) -> None:
        """Raise a clear error for images with values outside [0, K), which no softmax of this model can score."""
        self.check_images(x)
        if x.numel() and (x.min() < 0 or x.max() >= self.levels):
            raise PixelRNNError(f"image values must lie in [0, {self.levels}) for this model of {self.levels} "
                                f"levels, not [{x.min().item()}, {x.max().item()}]; quantise the images to "
                                f"{self.levels} levels first")

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Integer values in [0, K) to reals in [-1, 1], in the parameters' dtype (the paper scales and centres)."""
        return x.to(self.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        """int64 [B, C, H, W] (and class labels [B] for class-conditional models) -> logits [B, K, C, H, W]."""
        raise NotImplementedError

    def log_prob_per_value(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The C*H*W conditionals that :meth:`log_prob` sums: log p(x_c,i,j | every value before it in ``order()``).

        Each term sits at its own value's place, so a map of them shows where an image surprises the model. The
        multi-scale model's small-image values are scored by its lower levels and sit where the small image was
        subsampled from (every f-th row and column), so one map covers every level.

        Args:
            x: int64 [B, C, H, W] values in [0, K).
            y: class labels [B] (or one label) for a class-conditional model.

        Returns:
            float [B, C, H, W] in nats (at least float32); ``.flatten(1).sum(1)`` is :meth:`log_prob`.
        """
        self.check_values(x)
        return distributions.log_probs(self(x, y), x)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (or log p(x | y)) in nats, float [B]: the sum of all C*H*W conditionals."""
        return distributions.sum_per_image(self.log_prob_per_value(x, y))

    def bits_per_dim(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Bits per dimension of each image: -log p(x) / (C*H*W*ln 2), what ``evaluate`` averages over a split.

        Args:
            x: int64 [B, C, H, W] values in [0, K).
            y: class labels [B] (or one label) for a class-conditional model: then -log p(x | y).

        Returns:
            float [B].
        """
        return distributions.nats_to_bits_per_dim(-self.log_prob(x, y), math.prod(self.image_shape))

    def order(self) -> list[tuple[int, int, int]]:
        """(channel, row, column) of every value in the order the model generates them: raster, then R, G, B."""
        c, h, w = self.image_shape
        return [(k, i, j) for i in range(h) for j in range(w) for k in range(c)]

    def stepper(self, batch: int, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> Stepper:  # pragma: no cover - abstract
        """The network at one pixel at a time, for ``batch`` images (see :class:`Stepper`)."""
        raise NotImplementedError(f"{type(self).__name__} has no stepper; give it a stepper() for fast generation")

    def quick_stepper(self, batch: int, y: torch.Tensor | None = None,
                      context: torch.Tensor | None = None) -> Stepper:
        """:meth:`stepper` in quicker arithmetic, equal to it up to float rounding; by default the stepper itself."""
        return self.stepper(batch, y=y, context=context)

    def walk(self, x: torch.Tensor, wants: Callable[[int, int, int], bool],
             choose: Callable[[int, int, int, torch.Tensor], torch.Tensor], progress: bool = False,
             desc: str = "sampling", y: torch.Tensor | None = None,
             context: torch.Tensor | None = None, stable: bool = True) -> torch.Tensor:
        """Visit every value of ``x`` in model order with the fast step-wise path, filling in chosen values.

        For value (c, i, j): if ``wants(c, i, j)``, the logits [B, K] of that value given everything before it are
        computed and ``choose(c, i, j, logits)`` returns the values [B] to put there (drawn, decoded, or the known
        ones being encoded). This default walks raster order with :meth:`stepper`, or with :meth:`quick_stepper`
        where ``stable`` is False (sampling and completion: their draws need the distribution, not its last bits;
        the codec's float path needs the arithmetic its files were written with).

        Returns:
            ``x``, filled in place.
        """
        stepper = (self.stepper if stable else self.quick_stepper)(len(x), y=y, context=context)
        return raster_walk(stepper, x, wants, choose, progress=progress, desc=desc)

    sample = generate.sample
    complete = generate.complete
