"""Sampling and image completion, written once for every model.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016): images are drawn one value at a time in the
model's order (raster order over pixels, then R, G, B inside a pixel; the multi-scale model first generates its
small image), each value from its K-way softmax given all
values before it. Completion (the paper's figure 1) is the same loop with some values already known: those are
kept, the rest are drawn in model order.

Two methods give the same distribution, and with the same generator the same images:

- ``"fast"`` (the default) evaluates each layer only at the new pixel, from cached activations (each model's
  ``stepper()``, written beside its network, driven by ``model.walk``: :func:`pixelrnn.models.base.raster_walk`);
- ``"naive"`` runs the whole network once per value, C*H*W forward passes per batch: simple and exact, and what the
  fast path is tested against.

A known value that comes after the first unknown one in model order is kept, but it cannot condition the draws
before it: an autoregressive model only conditions on the past. Occlude a suffix (e.g. the bottom half) for true
conditional completions.

The fast path runs tens of thousands of small matrix products, one set per value. Split over two threads, a small
product gains nothing on a quiet machine, and each waits for the other thread's time slice when any other process is
busy (100x slower, measured). So the step-wise walk chooses its thread count by the work of one step, not by the
machine: one thread when the largest per-step product is small (:func:`step_threads`), the caller's setting otherwise.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from . import distributions
from .devices import SMALL_STEP_FLOPS, eval_mode, num_threads
from .errors import PixelRNNError

METHODS = ("fast", "naive")


def step_threads(model, batch: int) -> int:
    """Threads for the step-wise walk of ``batch`` images: 1 if its largest product per step is below
    ``SMALL_STEP_FLOPS`` (:mod:`pixelrnn.devices`), else the caller's setting. Every weight matrix of a stepper acts
    on each new pixel once; the largest bounds a step's work."""
    largest = max((p.numel() for p in model.parameters() if p.dim() >= 2), default=0)
    return 1 if 2 * batch * largest < SMALL_STEP_FLOPS else torch.get_num_threads()


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
    if not (isinstance(temperature, (int, float)) and 0 <= temperature < float("inf")):  # 0: the argmax
        raise PixelRNNError(f"the temperature must be a finite number of at least 0, e.g. 1.0, not {temperature}")
    if method not in METHODS:
        raise PixelRNNError(f"unknown sampling method {method!r}; choose one of {', '.join(METHODS)}")
    model.check_images(x)
    x = x.to(device=model.device, dtype=torch.long).clone()
    try:
        known = torch.broadcast_to(known.to(device=x.device, dtype=torch.bool), x.shape)
    except RuntimeError:
        raise PixelRNNError(f"the known-mask of shape {tuple(known.shape)} does not broadcast to {tuple(x.shape)}")
    x.masked_fill_(~known, 0)  # unknown values must not leak into anything, even by accident
    y = model.check_labels(y, len(x))
    # Inference mode, for both methods: the step-wise walk is thousands of small operations, each spared autograd's
    # bookkeeping (about a seventh of the PixelCNN's sampling time). x, made above, stays an ordinary tensor.
    with eval_mode(model), torch.inference_mode():
        run = _complete_fast if method == "fast" else _complete_naive
        return run(model, x, known, temperature, generator, progress, y)


def complete_each(model, images: torch.Tensor, known: torch.Tensor, k: int, temperature: float = 1.0,
                  generator: torch.Generator | None = None, y: torch.Tensor | int | None = None,
                  progress: bool = False, method: str = "fast") -> torch.Tensor:
    """Complete each of ``images`` ``k`` times, independently, as in the paper's figure 1.

    All n * k completions run as one batch of :func:`complete` (one pass of the sampling loop, not n * k), whose
    rows are (image 0, draw 0), (image 0, draw 1), ..., (image n - 1, draw k - 1).

    Args:
        model: any registered model.
        images: int64 [n, C, H, W]; values where ``known`` is False are ignored.
        known: bool, broadcastable to [C, H, W] (one mask for every image) or to ``images``.
        k: completions per image, at least 1.
        temperature: softmax temperature (1.0 samples the model).
        generator: optional torch.Generator for reproducible draws.
        y: class labels [n] (one per image), or one label for all, for class-conditional models.
        progress: show a progress bar.
        method: "fast" or "naive", as in :func:`complete`.

    Returns:
        int64 [n, k, C, H, W] on the model's device: ``[i, j]`` is the j-th completion of image i.
    """
    if k < 1:
        raise PixelRNNError(f"the number of completions per image must be at least 1, not {k}")
    model.check_images(images)
    n = len(images)
    if known.dim() == 4 and len(known) == n:  # one mask per image: each of its k rows keeps that image's values
        known = known.repeat_interleave(k, dim=0)
    y = model.check_labels(y, n)
    if y is not None:
        y = y.repeat_interleave(k)
    batch = images.repeat_interleave(k, dim=0)  # (n * k, C, H, W)
    completions = complete(model, batch, known, temperature=temperature, generator=generator, method=method,
                           progress=progress, y=y)
    return completions.view(n, k, *model.image_shape)


def _complete_naive(model, x, known, temperature, generator, progress, y) -> torch.Tensor:
    for c, i, j in tqdm(model.order(), desc="sampling", unit="value", disable=None if progress else True, leave=False):
        todo = ~known[:, c, i, j]
        if not todo.any():
            continue
        logits = model(x, y)[:, :, c, i, j]  # (B, K)
        draw = distributions.sample(logits, temperature, generator)
        x[:, c, i, j] = torch.where(todo, draw, x[:, c, i, j])
    return x


def walk(model, x: torch.Tensor, wants, choose, progress: bool = False, desc: str = "sampling",
         y: torch.Tensor | None = None, context: torch.Tensor | None = None, stable: bool = True) -> torch.Tensor:
    """Visit every value of ``x`` in model order with the fast step-wise path: ``model.walk``, which see.

    The one loop behind fast sampling, completion and the codec. It runs on :func:`step_threads` threads.
    ``stable=False`` lets the model take its quicker step-wise arithmetic (``model.quick_stepper``), equal up to
    float rounding; the codec keeps the default, the arithmetic its float-path files were written with.
    """
    with num_threads(step_threads(model, len(x))):
        return model.walk(x, wants, choose, progress=progress, desc=desc, y=y, context=context, stable=stable)


def _complete_fast(model, x, known, temperature, generator, progress, y) -> torch.Tensor:
    # Which values to draw, read to the host once: on a GPU a read per value would wait for the device C*H*W times.
    todo = (~known).any(0).tolist()  # [C][H][W]
    kept = known.any(0).tolist()  # [C][H][W]: some image keeps this value

    def wants(c, i, j):
        return todo[c][i][j]

    def choose(c, i, j, logits):
        draw = distributions.sample(logits, temperature, generator)
        return torch.where(known[:, c, i, j], x[:, c, i, j], draw) if kept[c][i][j] else draw

    return walk(model, x, wants, choose, progress, y=y, stable=False)  # draws need the distribution, not its last bits
