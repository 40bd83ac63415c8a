"""Look inside a model: where an image costs bits, and what the model believes at a pixel.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) factorises p(x) into one K-way softmax per value,
each given every value before it in the model's order (section 2). An image's -log2 p(x) is therefore a sum of C*H*W
terms, one per value: laid out as a picture they form a *bit map* that shows where the image surprises the model
(edges, texture, an unusual stroke). The paper's figure of softmax activations shows the other side: the whole
K-way distribution of one value, often multi-modal, with extra mass at 0 and 255. :func:`explain` computes both
from one forward pass; :mod:`pixelrnn.explain_figures` draws them.

The figures add up: an image's bits/dim here is ``model.bits_per_dim`` of it, summed as ``log_prob`` sums (float32
terms per image, then float64 over images), so the figure of a set of images equals
:func:`pixelrnn.evaluate.evaluate`'s for the same images and precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from . import distributions
from .devices import eval_batch_size, eval_mode, tf32, to_device
from .errors import ConfigError, PixelRNNError
from .precision import autocast, resolve_precision

__all__ = ["Explanation", "check_pixels", "explain", "first_hidden_pixel", "parse_pixel"]


@dataclass(frozen=True)
class Explanation:
    """The bit map of each image and, at chosen pixels, its predictive distributions.

    Attributes:
        images: int64 [N, C, H, W], the images explained (on the CPU).
        levels: K, the number of values per channel.
        bits: float64 [N, C, H, W]: -log2 p of each value given every value before it in the model's order.
        nats: float64 [N]: -log p(x) of each image, summed as ``model.log_prob`` sums.
        pixels: the (row, column) of each pixel whose distributions were asked for.
        probabilities: float64 [N, P, C, K]: at each of the P pixels, each channel's K-way distribution given the
            image's values before it (at ``temperature``).
        temperature: the softmax temperature of ``probabilities`` (1.0: the model's own; the bits always are).
    """

    images: torch.Tensor
    levels: int
    bits: torch.Tensor
    nats: torch.Tensor
    pixels: tuple[tuple[int, int], ...]
    probabilities: torch.Tensor
    temperature: float = 1.0

    @property
    def dims(self) -> int:
        """C*H*W, the values of one image."""
        return math.prod(self.images.shape[1:])

    @property
    def pixel_bits(self) -> torch.Tensor:
        """float64 [N, H, W]: the bits of each pixel, its channels' terms added."""
        return self.bits.sum(1)

    @property
    def bits_per_dim(self) -> torch.Tensor:
        """float64 [N]: each image's -log2 p(x) / (C*H*W), ``model.bits_per_dim`` of it."""
        return distributions.nats_to_bits_per_dim(self.nats, self.dims)

    @property
    def total_bits_per_dim(self) -> float:
        """The bits/dim of all the images together, ``evaluate``'s figure for them."""
        return float(distributions.nats_to_bits_per_dim(self.nats.sum().item() / len(self.nats), self.dims))

    @property
    def true_values(self) -> torch.Tensor:
        """int64 [N, P, C]: each image's own values at the chosen pixels."""
        if not self.pixels:
            return self.images.new_zeros(len(self.images), 0, self.images.shape[1])
        rows, columns = zip(*self.pixels)
        return self.images[:, :, list(rows), list(columns)].transpose(1, 2)


def parse_pixel(text: str) -> tuple[int, int]:
    """``"i,j"`` (row i, column j, from 0) as a pair of integers, or a ConfigError that shows the form."""
    parts = text.replace(" ", "").split(",")
    try:
        row, column = (int(part) for part in parts)
    except ValueError:
        raise ConfigError(f"a pixel is ROW,COLUMN with two whole numbers counted from 0, e.g. 14,7, not "
                          f"{text!r}") from None
    return row, column


def check_pixels(pixels: Sequence[tuple[int, int]], image_shape: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    """The pixels as a tuple of (row, column), each checked to lie inside an image of ``image_shape``.

    Raises:
        ConfigError: a pixel is not two integers, or lies outside the image.
    """
    _, height, width = image_shape
    checked = []
    for pixel in pixels:
        if isinstance(pixel, str):
            pixel = parse_pixel(pixel)
        if (len(pixel) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pixel)):
            raise ConfigError(f"a pixel is (row, column), two whole numbers, not {pixel!r}")
        row, column = pixel
        if not (0 <= row < height and 0 <= column < width):
            raise ConfigError(f"pixel {row},{column} lies outside the {height}x{width} image (rows 0..{height - 1}, "
                              f"columns 0..{width - 1})")
        checked.append((row, column))
    return tuple(checked)


def first_hidden_pixel(model, known: torch.Tensor) -> tuple[int, int]:
    """The (row, column) of the first value in the model's order that ``known`` (bool [C, H, W]) hides."""
    known = torch.broadcast_to(known, model.image_shape)
    for c, i, j in model.order():
        if not known[c, i, j]:
            return i, j
    raise PixelRNNError("nothing is hidden, so no value is drawn")


@torch.no_grad()
def explain(model, images: torch.Tensor, labels: torch.Tensor | int | None = None,
            pixels: Sequence[tuple[int, int]] = (), temperature: float = 1.0, batch_size: int | None = None,
            precision: str = "fp32") -> Explanation:
    """The bit map of each image, and the distributions at ``pixels``, from one forward pass per batch.

    Args:
        model: any registered model, on the device to run on.
        images: integer [N, C, H, W] (or one [C, H, W]) values in [0, K).
        labels: class labels [N] (or one for all) for a class-conditional model; required by one.
        pixels: (row, column) pairs (or "row,column" strings) whose K-way distributions to return.
        temperature: divides the logits of the distributions (the one a sample at that temperature is drawn from);
            the bits are always the model's own (temperature 1).
        batch_size: images per forward pass (speed only; default: ``devices.eval_batch_size``).
        precision: "auto", "fp32", "bf16" or "fp16", as in :func:`pixelrnn.evaluate.evaluate`.

    Returns:
        An :class:`Explanation`.

    Raises:
        ConfigError: a pixel outside the image, a temperature that is not positive and finite, a class-conditional
            model without labels, or a batch size below 1.
        PixelRNNError: images that do not fit the model.
    """
    if images.dim() == 3:
        images = images[None]
    model.check_images(images)
    images = images.long()  # uint8 data sets: a comparison with K = 256 would wrap around in uint8
    model.check_values(images)
    pixels = check_pixels(pixels, model.image_shape)
    if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise ConfigError(f"the temperature must be a finite number above 0, e.g. 1.0, not {temperature}")
    if model.settings.num_classes and labels is None:
        raise ConfigError(f"the model is class-conditional; give the class of the images (0.."
                          f"{model.settings.num_classes - 1})")
    labels = model.check_labels(labels, len(images)) if model.settings.num_classes else None
    batch_size = eval_batch_size(model.device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ConfigError(f"the batch size must be at least 1, e.g. 16, not {batch_size}")
    precision = resolve_precision(precision, model.device)
    rows, columns = (list(v) for v in zip(*pixels)) if pixels else ([], [])
    bits, nats, probabilities = [], [], []
    with eval_mode(model), tf32(False):
        for first in range(0, len(images), batch_size):
            x = to_device(images[first:first + batch_size], model.device).long()
            y = None if labels is None else labels[first:first + batch_size]
            with autocast(precision, model.device):
                logits = model(x, y)  # (B, K, C, H, W)
            terms = distributions.log_probs(logits, x)  # (B, C, H, W), as log_prob_per_value
            nats.append(-distributions.sum_per_image(terms).double().cpu())
            bits.append(-terms.double().cpu() / math.log(2))
            chosen = logits[:, :, :, rows, columns].double() / temperature  # (B, K, C, P)
            probabilities.append(torch.softmax(chosen, dim=1).permute(0, 3, 2, 1).cpu())  # (B, P, C, K)
    return Explanation(images=images.cpu().long(), levels=model.levels, bits=torch.cat(bits), nats=torch.cat(nats),
                       pixels=pixels, probabilities=torch.cat(probabilities), temperature=float(temperature))
