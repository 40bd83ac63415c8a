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

from .distributions import nats_to_bits_per_dim
from .errors import ConfigError
from .precision import autocast


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 256,
             precision: str = "fp32", progress: bool = False, desc: str = "evaluating") -> dict:
    """Exact negative log-likelihood of ``images`` under ``model``.

    Args:
        model: any registered model.
        images: uint8 or int64 [N, C, H, W]; every image is scored, the last partial batch included.
        labels: class labels [N] for class-conditional models (log p(x | y)); ignored by unconditional ones.
        batch_size: images per forward pass (affects speed only).
        precision: "fp32" or "bf16" (autocast; the log-probabilities are summed in float64 either way).
        progress: show a progress bar with the running bits/dim.

    Returns:
        {"bits_per_dim", "nats_per_image", "images", "seconds"}.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size (--batch-size) must be at least 1, e.g. 256, not {batch_size}")
    if len(images) == 0:
        raise ConfigError("there are no images to evaluate; check --limit and the data set")
    was_training = model.training
    model.eval()
    total, count, start = 0.0, 0, time.perf_counter()
    dims = math.prod(images.shape[1:])
    batches = tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=None if progress else True,
                   leave=False)  # disable=None: no bar without a terminal, as in a log file
    try:
        for first in batches:
            x = images[first:first + batch_size].to(device=model.device, dtype=torch.long)
            y = None
            if labels is not None and model.cfg.num_classes:
                y = labels[first:first + batch_size].to(model.device)
            with autocast(precision, model.device):
                logp = model.log_prob(x, y)
            total -= logp.double().sum().item()
            count += len(x)
            batches.set_postfix(bpd=f"{nats_to_bits_per_dim(total / count, dims):.4f}")
    finally:
        model.train(was_training)
    nats = total / count
    return {"bits_per_dim": nats_to_bits_per_dim(nats, dims), "nats_per_image": nats, "images": count,
            "seconds": time.perf_counter() - start}
