"""Sampling and image completion, written once for every model.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016): images are drawn one value at a time in the
model's order (raster order over pixels, then R, G, B inside a pixel; the multi-scale model first generates its
small image), each value from its K-way softmax given all
values before it. Completion (the paper's figure 1) is the same loop with some values already known: those are
kept, the rest are drawn in model order.

Two methods give the same distribution, and with the same generator the same images:

- ``"fast"`` (the default) evaluates each layer only at the new pixel, from cached activations
  (:mod:`pixelrnn.models.stepwise`);
- ``"naive"`` runs the whole network once per value, C*H*W forward passes per batch: simple and exact, and what the
  fast path is tested against.

A known value that comes after the first unknown one in model order is kept, but it cannot condition the draws
before it: an autoregressive model only conditions on the past. Occlude a suffix (e.g. the bottom half) for true
conditional completions.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributions
from .errors import PixelRNNError

METHODS = ("fast", "naive")


def sample(model, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
           method: str = "fast", progress: bool = False, y: torch.Tensor | int | None = None) -> torch.Tensor:
    """Draw ``n`` images from ``model``: int64 [n, C, H, W] (of class ``y``, for class-conditional models)."""
    if n < 1:
        raise PixelRNNError(f"the number of images must be at least 1, not {n}")
    x = torch.zeros((n, *model.image_shape), dtype=torch.long, device=model.device)
    known = torch.zeros_like(x, dtype=torch.bool)
    return complete(model, x, known, temperature=temperature, generator=generator, method=method, progress=progress,
                    y=y)


def complete(model, x: torch.Tensor, known: torch.Tensor, temperature: float = 1.0,
             generator: torch.Generator | None = None, method: str = "fast", progress: bool = False,
             y: torch.Tensor | int | None = None) -> torch.Tensor:
    """Keep ``x`` where ``known`` is True and draw every other value in model order.

    Args:
        model: any registered model.
        x: int64 [B, C, H, W]; values where ``known`` is False are ignored.
        known: bool, broadcastable to ``x``.
        temperature: softmax temperature (1.0 samples the model).
        generator: optional torch.Generator for reproducible draws.
        method: "fast" (step-wise, from cached activations) or "naive" (one full forward pass per value).
        progress: show a progress bar.
        y: class labels [B] (or one label for all) for class-conditional models.

    Returns:
        int64 [B, C, H, W].
    """
    if method not in METHODS:
        raise PixelRNNError(f"unknown sampling method {method!r}; choose one of {', '.join(METHODS)}")
    model.check_images(x)
    x = x.to(device=model.device, dtype=torch.long).clone()
    try:
        known = torch.broadcast_to(known.to(device=x.device, dtype=torch.bool), x.shape)
    except RuntimeError:
        raise PixelRNNError(f"the known-mask of shape {tuple(known.shape)} does not broadcast to {tuple(x.shape)}")
    x[~known] = 0  # unknown values must not leak into anything, even by accident
    if y is not None:
        y = torch.as_tensor(y, device=x.device).long().reshape(-1)
        if len(y) not in (1, len(x)):
            raise PixelRNNError(f"give one class label, or one per image ({len(x)}), not {len(y)}")
        y = y.expand(len(x))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            run = _complete_fast if method == "fast" else _complete_naive
            return run(model, x, known, temperature, generator, progress, y)
    finally:
        model.train(was_training)


def _complete_naive(model, x, known, temperature, generator, progress, y) -> torch.Tensor:
    for c, i, j in tqdm(model.order(), desc="sampling", unit="value", disable=not progress, leave=False):
        todo = ~known[:, c, i, j]
        if not todo.any():
            continue
        logits = model(x, y)[:, :, c, i, j]  # (B, K)
        draw = distributions.sample(logits, temperature, generator)
        x[:, c, i, j] = torch.where(todo, draw, x[:, c, i, j])
    return x


def walk(model, x: torch.Tensor, wants, choose, progress: bool = False, desc: str = "sampling",
         y: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
    """Visit every value of ``x`` in model order with the fast step-wise path, filling in chosen values.

    The one loop behind fast sampling, completion and the codec. For value (c, i, j): if ``wants(c, i, j)``, the
    logits [B, K] of that value given everything before it are computed and ``choose(c, i, j, logits)`` returns
    the values [B] to put there (drawn, decoded, or the known ones being encoded).

    ``y`` and ``context`` condition the model. A model that generates in another order than raster (the multi-scale
    model) provides its own ``walk``.

    Returns:
        ``x``, filled in place.
    """
    from .models.stepwise import STEPPERS

    if hasattr(model, "walk"):
        return model.walk(x, wants, choose, progress=progress, desc=desc, y=y)
    stepper = STEPPERS[model.name](model, len(x), y=y, context=context)
    channels, height, width = model.image_shape
    pixels = tqdm(total=height * width, desc=desc, unit="pixel", disable=not progress, leave=False)
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


def _complete_fast(model, x, known, temperature, generator, progress, y) -> torch.Tensor:
    def wants(c, i, j):
        return not known[:, c, i, j].all()

    def choose(c, i, j, logits):
        draw = distributions.sample(logits, temperature, generator)
        return torch.where(known[:, c, i, j], x[:, c, i, j], draw)

    return walk(model, x, wants, choose, progress, y=y)


@torch.no_grad()
def stepwise_logits(model, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The logits [B, K, C, H, W] of ``x`` computed by the fast step-wise path, value by value.

    Equal to ``model(x, y)`` to float tolerance; the tests use it to check every model's stepper.
    """
    model.check_images(x)
    out = x.new_empty(len(x), model.levels, *model.image_shape, dtype=model.dtype)

    def record(c, i, j, logits):
        out[:, :, c, i, j] = logits
        return x[:, c, i, j]

    walk(model, x.clone(), lambda c, i, j: True, record, y=y)
    return out


OCCLUSIONS = ("bottom-half", "right-half", "box:x0,y0,x1,y1", "PATH.png")


def occlusion(spec: str, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The ``known`` mask [C, H, W] (True = kept) for an occlusion given on the command line.

    Args:
        spec: "bottom-half", "right-half", "box:x0,y0,x1,y1" (columns x0..x1-1 of rows y0..y1-1 are hidden), or the
            path of a PNG of the image's size whose white (>= 128) pixels are hidden.
        image_shape: (C, H, W).
    """
    c, h, w = image_shape
    hidden = torch.zeros(h, w, dtype=torch.bool)
    if spec == "bottom-half":
        hidden[h // 2:] = True
    elif spec == "right-half":
        hidden[:, w // 2:] = True
    elif spec.startswith("box:"):
        try:
            x0, y0, x1, y1 = (int(v) for v in spec[4:].split(","))
        except ValueError:
            raise PixelRNNError(f"--occlude {spec!r}: a box is box:x0,y0,x1,y1 with four integers") from None
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise PixelRNNError(f"--occlude {spec!r}: the box must lie inside the {w}x{h} image, with x0 < x1, y0 < y1")
        hidden[y0:y1, x0:x1] = True
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(spec) as picture:
                mask = torch.from_numpy(np.asarray(picture.convert("L")).copy()) >= 128
        except (OSError, UnidentifiedImageError):
            raise PixelRNNError(f"--occlude {spec!r} is none of {', '.join(OCCLUSIONS[:3])}, and not a readable "
                                f"PNG mask") from None
        if tuple(mask.shape) != (h, w):
            raise PixelRNNError(f"the mask {spec} is {mask.shape[1]}x{mask.shape[0]}, the images are {w}x{h}")
        hidden = mask
    if not hidden.any():
        raise PixelRNNError(f"--occlude {spec!r} hides no pixel")
    return (~hidden).expand(c, h, w)
