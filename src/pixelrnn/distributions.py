"""The output distribution: one K-way categorical per colour value.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 2.2: every conditional
p(x_i,c | x_<i, x_i,<c) is a softmax over the K discrete values (K = 256 for 8-bit images, 2 for binarised MNIST),
with no ordinal assumption. Models return logits [B, K, C, H, W]; everything that turns logits into a likelihood,
a bits/dim figure or a sample lives here, once, for every model.

Bits per dimension is the negative log-likelihood in bits divided by the number of values C*H*W; for a discrete
model it equals the continuous bits/dim of the same data dequantised with uniform noise, which is how the paper
compares to continuous models.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def log_probs(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log-probability of every value of ``x``.

    Args:
        logits: float [B, K, C, H, W].
        x: int64 [B, C, H, W] with values in [0, K).

    Returns:
        [B, C, H, W] log p(x_value | its context) in nats, in at least float32 (bf16 logits are promoted, so that
        the sum over an image keeps its precision).
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    # cross_entropy takes the class dimension second, exactly the [B, K, ...] layout the models return.
    return -F.cross_entropy(logits, x, reduction="none")


def log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x) in nats per image: the sum of all C*H*W conditionals. Returns [B]."""
    return log_probs(logits, x).flatten(1).sum(1)


def nats_to_bits_per_dim(nats: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """Convert a negative log-likelihood in nats for ``dims`` values into bits per value."""
    return nats / (dims * math.log(2))


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean bits/dim of a batch, the training loss: -log p(x) / (C*H*W*ln 2), averaged over images."""
    return nats_to_bits_per_dim(-log_prob(logits, x).mean(), x[0].numel())


def sample(logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one value per categorical.

    Args:
        logits: float [..., K] (the class dimension last).
        temperature: divides the logits; 1.0 samples the model, smaller is greedier, 0 takes the argmax.
        generator: optional torch.Generator for reproducible draws.

    Returns:
        int64 [...] values in [0, K).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
