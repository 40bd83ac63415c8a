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
import numbers

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _check_pair(logits: torch.Tensor, x: torch.Tensor) -> None:
    """Refuse arguments that cross_entropy would reject with a message about its own internals."""
    for name, value in (("logits", logits), ("x", x)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(value).__name__}")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"logits must be floating point, not {logits.dtype}")
    if x.dtype not in (torch.int64, torch.uint8):  # the two index types cross_entropy takes
        raise TypeError(f"x must hold int64 values in [0, K) (x.long()), not {x.dtype}")
    if logits.dim() != x.dim() + 1 or logits.shape[:1] + logits.shape[2:] != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be [B, K, C, H, W] for x [B, C, H, W] "
                         f"{tuple(x.shape)}")


def log_probs(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log-probability of every value of ``x``.

    Args:
        logits: float [B, K, C, H, W].
        x: int64 [B, C, H, W] with values in [0, K).

    Returns:
        [B, C, H, W] log p(x_value | its context) in nats, in at least float32 (bf16 logits are promoted, so that
        the sum over an image keeps its precision).

    Raises:
        TypeError: an argument is not a tensor, ``logits`` are not floating point, or ``x`` is not int64 (or uint8).
        ValueError: the shapes do not pair up.
    """
    _check_pair(logits, x)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    order = _rows_order(logits)
    if order is None:
        # cross_entropy takes the class dimension second, exactly the [B, K, ...] layout the models return.
        return -F.cross_entropy(logits, x, reduction="none")
    # The K logits of each value lie side by side in memory (a channels-last network's): the same cross-entropy
    # over the rows of a (values, K) matrix, a view. On [B, K, ...] it would first copy the logits to that layout,
    # and its gradient would come back in it, to be copied again by the layer that made them.
    rows = logits.permute(order)  # (..., K)
    value_order = [d - (d > 1) for d in order[:-1]]  # the same order of x's dimensions
    terms = -RowCrossEntropy.apply(rows.reshape(-1, rows.shape[-1]), x.permute(value_order).reshape(-1))
    # Contiguous like x (a copy of one value per K logits, where C > 1), so that any sum over the terms runs in the
    # order of sum_per_image's, bit for bit.
    return terms.view(rows.shape[:-1]).permute([value_order.index(d) for d in range(x.dim())]).contiguous()


class RowCrossEntropy(torch.autograd.Function):
    """``F.cross_entropy(z, target, reduction="none")`` over the rows of z (N, K), with a lighter backward.

    The gradient g (softmax(z) - onehot(target)) is formed directly from the saved log-softmax; cross_entropy's own
    backward first writes a dense gradient of its NLL step (zeros, and -g at each target) and then runs the
    log-softmax backward over it, one more pass over the N x K logits.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_softmax = torch.log_softmax(z, 1)  # (N, K)
        ctx.save_for_backward(log_softmax, target)
        return -log_softmax.gather(1, target[:, None])[:, 0]  # (N,)

    @staticmethod
    @once_differentiable  # the saved log-softmax is not a function of z to autograd: refuse a second derivative
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        log_softmax, target = ctx.saved_tensors
        grad = grad[:, None]  # (N, 1)
        # In place: the saved log-softmax becomes the gradient (a second backward through this graph would find it
        # changed, and autograd refuses that, rather than computing with it).
        return log_softmax.exp_().mul_(grad).scatter_add_(1, target[:, None], -grad), None


def _rows_order(logits: torch.Tensor) -> list[int] | None:
    """The order of the dimensions of logits [B, K, ...] that makes them a contiguous (..., K) array, or None where
    the K logits of a value do not lie side by side in memory."""
    order = [*sorted((d for d in range(logits.dim()) if d != 1), key=logits.stride, reverse=True), 1]
    return order if logits.permute(order).is_contiguous() else None


def log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x) in nats per image: the sum of all C*H*W conditionals.

    Args:
        logits: float [B, K, C, H, W].
        x: int64 [B, C, H, W] with values in [0, K).

    Returns:
        float [B] log p(x) in nats.
    """
    return sum_per_image(log_probs(logits, x))


def sum_per_image(terms: torch.Tensor) -> torch.Tensor:
    """The per-value terms [B, C, H, W] of :func:`log_probs` added up per image: float [B].

    The one summation behind ``log_prob``, so that a map of the terms adds up to the same figure bit for bit.
    """
    return terms.flatten(1).sum(1)


def nats_to_bits_per_dim(nats: torch.Tensor | float, dims: int) -> torch.Tensor | float:
    """Bits per dimension: a negative log-likelihood in nats, divided by ``dims * ln 2``.

    The one place the package computes bits/dim; everything else calls it.

    Args:
        nats: -log p(x) in nats: a float, or a tensor (e.g. [B], one per image), for ``dims`` values each.
        dims: the number of values it covers, C*H*W for one image (``math.prod(model.image_shape)``).

    Returns:
        ``nats / (dims * ln 2)``, of the type of ``nats``.

    Raises:
        TypeError: ``nats`` is not a number or tensor, or ``dims`` is not an integer (e.g. an image shape).
        ValueError: ``dims`` is not positive.
    """
    if not isinstance(nats, (torch.Tensor, numbers.Real)):
        raise TypeError(f"nats must be a number or a torch.Tensor of nats, not {type(nats).__name__}")
    if not isinstance(dims, numbers.Integral) or isinstance(dims, bool):
        raise TypeError(f"dims must be an int, the number of values (C*H*W, e.g. math.prod(image_shape)), "
                        f"not {dims!r}")
    if dims < 1:
        raise ValueError(f"dims must be at least 1, not {dims}")
    return nats / (dims * math.log(2))


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean bits/dim of a batch, the training loss: -log p(x) / (C*H*W*ln 2), averaged over images.

    Args:
        logits: float [B, K, C, H, W].
        x: int64 [B, C, H, W] with values in [0, K).

    Returns:
        A scalar tensor, differentiable in ``logits``.
    """
    return nats_to_bits_per_dim(-log_prob(logits, x).mean(), x[0].numel())


def sample(logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one value per categorical.

    Args:
        logits: float [..., K] (the class dimension last).
        temperature: divides the logits; 1.0 samples the model, smaller is greedier, 0 takes the argmax.
        generator: optional torch.Generator for reproducible draws.

    Returns:
        int64 [...] values in [0, K).

    Raises:
        ValueError: ``temperature`` is negative.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.double()
    probs = torch.softmax(logits if temperature == 1 else logits / temperature, dim=-1)  # x / 1 is x, bit for bit
    # Inverse transform sampling: the first value whose cumulative probability exceeds a uniform draw scaled to the
    # total. One uniform per categorical, and a search of K sorted values: several times faster than multinomial on
    # the small batches of a step-wise walk. ``right=True`` passes over values of probability 0 (their cumulative
    # equals the one before); the clamp keeps a draw that rounds up to the total inside [0, K).
    cdf = probs.reshape(-1, probs.shape[-1]).cumsum(-1)
    u = torch.rand(len(cdf), 1, dtype=cdf.dtype, device=cdf.device, generator=generator)
    drawn = torch.searchsorted(cdf, u.mul_(cdf[:, -1:]), right=True).clamp_(max=cdf.shape[-1] - 1)
    return drawn.reshape(probs.shape[:-1])
