"""Exact likelihood over a whole data split: bits/dim and nats per image.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) reports the negative log-likelihood in nats per
image for binarised MNIST and in bits per dimension, -log2 p(x) / (C*H*W), for CIFAR-10 and ImageNet. Both come
from one sum over every image of the split: no batch is dropped, and the sum is kept in float64.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from . import distributed
from .devices import eval_batch_size, eval_mode, tf32, to_device
from .distributions import nats_to_bits_per_dim
from .errors import ConfigError
from .precision import autocast, resolve_precision


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int | None = None,
             precision: str = "fp32", progress: bool = False, desc: str = "evaluating", compile: bool = False) -> dict:
    """Exact negative log-likelihood of ``images`` under ``model``.

    Under torchrun every rank scores its own contiguous part of the images and the float64 sums are added over the
    ranks, so every rank returns the figures of the whole set. TF32 is off: a reported likelihood does not depend
    on the GPU.

    Args:
        model: any registered model, on the device to evaluate on.
        images: uint8 or int64 [N, C, H, W]; every image is scored, the last partial batch included.
        labels: class labels [N] for class-conditional models (log p(x | y)); ignored by unconditional ones.
        batch_size: images per forward pass (affects speed only; default: ``devices.eval_batch_size``, 16 on a
            CPU and 256 on a GPU).
        precision: "auto" (bf16 where the model's device runs it natively, else fp32), "fp32", "bf16" or "fp16"
            (autocast; the log-probabilities are summed in float64 either way).
        progress: show a progress bar with the running bits/dim (on rank 0 only).
        compile: score with ``torch.compile(model.log_prob)``.

    Returns:
        {"bits_per_dim", "nats_per_image", "images", "seconds"}.
    """
    if batch_size is None:
        batch_size = eval_batch_size(model.device)
    if batch_size < 1:
        raise ConfigError(f"batch_size (--batch-size) must be at least 1, e.g. 16, not {batch_size}")
    if len(images) == 0:
        raise ConfigError("there are no images to evaluate; check --limit and the data set")
    if labels is not None and model.settings.num_classes:
        # Checked once, before any batch: on a GPU the per-batch path reads no label back (that would stop the
        # device every batch), and an out-of-range one would end in a device-side assert instead of this message.
        model.check_labels(labels)
    precision = resolve_precision(precision, model.device)
    score = torch.compile(model.log_prob) if compile else model.log_prob
    total, count, start = 0.0, 0, time.perf_counter()
    dims = math.prod(images.shape[1:])
    part = distributed.shard(len(images))
    images = images[part]
    labels = None if labels is None else labels[part]
    # disable=None: no bar without a terminal (a log file), and none but rank 0's under torchrun
    batches = tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False,
                   disable=None if progress and distributed.is_main() else True)
    with eval_mode(model), tf32(False):
        for first in batches:
            x = to_device(images[first:first + batch_size], model.device).long()
            y = None
            if labels is not None and model.settings.num_classes:
                y = to_device(labels[first:first + batch_size], model.device)
            with autocast(precision, model.device):
                logp = score(x, y)
            total -= logp.double().sum().item()
            count += len(x)
            batches.set_postfix(bpd=f"{nats_to_bits_per_dim(total / count, dims):.4f}")
    total, count = distributed.sum_over_ranks(total, float(count))
    count = int(count)
    nats = total / count
    return {"bits_per_dim": nats_to_bits_per_dim(nats, dims), "nats_per_image": nats, "images": count,
            "seconds": time.perf_counter() - start}
