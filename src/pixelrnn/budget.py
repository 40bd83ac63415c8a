"""What a command will need, checked before it allocates: the memory of a model, of its training step, and of the
images it is asked to draw.

One argument can ask for more than any machine has: ``--hidden 1000000000`` (a model of 10^18 parameters),
``sample -n 1000000000000`` or ``complete -k 100000``. Left alone, each tries to allocate it, and ends in a
traceback from the allocator, or in the system killing the process (and whatever else was running) once memory runs
out. So every such command first estimates what it needs and compares it with the memory available.

The estimates are measured, not modelled: the model is built on PyTorch's ``meta`` device, which records shapes and
allocates nothing, and run there while a dispatch mode adds up the bytes of every tensor it makes. A training step
needs its parameters, their gradients and the optimizer's state (four copies of the parameters at most, in float32)
and what the forward pass keeps for the backward pass (every tensor it makes: an upper bound). Generation needs the
step-wise path's caches and one step's tensors per image (measured at two batch sizes, so that what the batch shares,
such as masked weights, is counted once); the naive path and the multi-scale model's walk need a full forward pass
per image. The figures err high, by at most a few times for the forward pass, never low by much.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .errors import ConfigError
from .models import AutoregressiveModel
from .models.registry import build_from_config, parameter_count

__all__ = ["available_bytes", "check_generation_fits", "check_training_fits", "gib"]

# Float32 copies of the parameters that training keeps: the weights, their gradients, and at most two per-parameter
# statistics of the optimizer (RMSProp keeps one, Adam two).
TRAINING_COPIES = 4
PICTURE_SIDE = 64  # pictures enlarge small images to about this side (pictures.py)


class _NewTensorBytes(TorchDispatchMode):
    """Adds up the bytes of every tensor an operation makes (views and in-place results share memory: skipped)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not any(r.alias_info is not None for r in func._schema.returns):
            self.total += sum(t.numel() * t.element_size() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        return out


def gib(n: float) -> str:
    """Bytes as a short figure: "3.2 GiB", "12 TiB"."""
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2**10:.1f} KiB"


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory this process could still allocate: free memory of a CUDA device, or the system's available memory
    (``MemAvailable``, which counts what the page cache would give back)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _meta_model(config: dict[str, Any]) -> AutoregressiveModel:
    try:
        with torch.device("meta"):
            return build_from_config(config)
    except RuntimeError as e:  # a tensor whose size overflows 64 bits
        raise ConfigError(f"the model is too large to build ({str(e).splitlines()[0]})") from None


def _forward_bytes(model: AutoregressiveModel, batch: int, y: bool) -> int:
    """Bytes of the tensors one forward pass of ``model`` (on the meta device) makes for ``batch`` images."""
    x = torch.zeros(batch, *model.image_shape, dtype=torch.long, device="meta")
    labels = torch.zeros(batch, dtype=torch.long, device="meta") if y else None
    with _NewTensorBytes() as counter:
        model(x, labels)
    return counter.total


def _step_bytes(model: AutoregressiveModel, batch: int, y: bool) -> int:
    """Bytes of a stepper's caches and of one step (the first pixel and its row) for ``batch`` images; for a model
    that walks in stages (the multi-scale model), those of its largest stage and of the map that links them."""
    if type(model).walk is not AutoregressiveModel.walk:  # the multi-scale model: small image, then the rest
        x = torch.zeros(batch, *model.small_model.image_shape, dtype=torch.long, device="meta")
        with _NewTensorBytes() as counter, torch.no_grad():
            model.context(x)
        return counter.total + max(_step_bytes(model.small_model, batch, y), _step_bytes(model.conditional, batch, y))
    x = torch.zeros(batch, *model.image_shape, dtype=torch.long, device="meta")
    labels = torch.zeros(batch, dtype=torch.long, device="meta") if y else None
    channels = model.settings.context_channels
    context = torch.zeros(batch, channels, *model.image_shape[1:], device="meta") if channels else None
    with _NewTensorBytes() as counter, torch.no_grad():
        stepper = model.stepper(batch, y=labels, context=context)
        stepper.logits(x, 0, 0)
        stepper.end_row(x, 0)
    return counter.total + (0 if context is None else context.numel() * context.element_size())


def _per_image(measure, model: AutoregressiveModel, y: bool) -> tuple[int, int]:
    """(bytes shared by a batch, bytes per image) from ``measure`` at batch 1 and 2; (0, 0) where an operation of
    the model has no meta form, so that the check falls back to the parameters alone rather than failing the run."""
    try:
        one, two = measure(model, 1, y), measure(model, 2, y)
    except (RuntimeError, NotImplementedError):
        return 0, 0
    return max(0, 2 * one - two), max(0, two - one)


def _training_per_image(config: dict[str, Any]) -> tuple[int, int]:
    """(bytes shared by a batch, bytes per image) of a forward pass of the model ``config`` describes; like the
    parameters, measured at one and two layers and extended linearly, so that a deep config costs no time."""
    layers = config.get("layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or layers <= 2:
        model = _meta_model(config)
        return _per_image(_forward_bytes, model, bool(model.settings.num_classes))
    (shared1, each1), (shared2, each2) = (_training_per_image({**config, "layers": n}) for n in (1, 2))
    return shared1 + (layers - 1) * max(0, shared2 - shared1), each1 + (layers - 1) * max(0, each2 - each1)


def _refuse(what: str, need: int, have: int, fix: str) -> ConfigError:
    return ConfigError(f"{what} needs about {gib(need)} of memory, and {gib(have)} is available here; {fix}")


def check_training_fits(config: dict[str, Any], batch: int, device: torch.device | str = "cpu") -> None:
    """Refuse a training run whose model or step cannot fit in memory, with the estimate.

    Args:
        config: the model's config (``model.config``), e.g. from the command line's flags.
        batch: images per micro-step (the global batch over the ranks and gradient accumulation).
        device: where the run trains.

    Raises:
        ConfigError: the model cannot be built, or would not fit.
    """
    have = available_bytes(device)
    parameters = parameter_count(config)  # counted at one and two layers: fast for any depth
    weights = TRAINING_COPIES * 4 * parameters
    if weights > have:
        raise _refuse(f"a model of {parameters:,} parameters", weights, have,
                      "choose fewer --layers or a smaller --hidden or --head")
    shared, each = _training_per_image(config)
    need = weights + shared + batch * each
    if need > have:
        fits = max(0, (have - weights - shared) // max(1, each))
        raise _refuse(f"training on batches of {batch} images of {'x'.join(map(str, config['image_shape']))}", need, have,
                      f"use a smaller --batch-size (at most about {fits} fits), or --set grad_accum=N to split each "
                      "batch" if fits else "choose a smaller model")


def check_generation_fits(model: AutoregressiveModel, count: int, what: str, fix: str, naive: bool = False) -> None:
    """Refuse drawing ``count`` images at once with ``model`` where memory cannot hold them, with the estimate.

    Args:
        model: the model that will draw them (its config and dtype are read; its weights are not touched).
        count: images drawn together (sample's -n; complete's images times completions).
        what: the request, for the message, e.g. "sampling 10 images".
        fix: what to change, for the message, e.g. "ask for fewer with -n".
        naive: the naive path (a full forward pass per value) instead of the step-wise one.
    """
    have = available_bytes(model.device)
    meta = _meta_model(model.config).to(model.dtype)
    labels = bool(model.settings.num_classes)
    shared, each = _per_image(_forward_bytes if naive else _step_bytes, meta, labels)
    _, height, width = model.image_shape
    each += 2 * 8 * math.prod(model.image_shape)  # the int64 images drawn, and a copy on the way to the picture
    each += 3 * max(PICTURE_SIDE, height) * max(PICTURE_SIDE, width)  # their place in the RGB picture, enlarged
    need = shared + count * each
    if need > have:
        fits = max(0, (have - shared) // max(1, each))
        raise _refuse(what, need, have, f"{fix} (at most about {fits:,} fit at once)")
