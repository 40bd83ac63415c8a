"""Integer logits -> integer frequency tables: what the range coder codes each value with.

Each value's K logits l_k (integers in units of 2**-LOGIT_EXP) become frequencies f_k, each at least 1, summing to
exactly 2**P (P = PRECISION), by integer arithmetic alone, exact on every device:

    E_k = table[max(l) - l_k]               the exp table (:mod:`.tables`): about 2**EXP_BITS * exp(l_k - max l)
    T = sum_k E_k,  M = floor((2**P - K) * 2**SHIFT / T)        one exact integer division per value
    f_k = 1 + floor(E_k * M / 2**SHIFT)                          every f_k >= 1: no value is impossible
    the rest, 2**P - sum_k f_k (at most 2K), goes to the first k of largest logit

A softmax with one division per value instead of one per entry: M / 2**SHIFT is (2**P - K) / T rounded down, so the
shares never overshoot, and what rounding leaves over (below 2K out of 2**24) goes to the likeliest value. The
integers are held in float64: E_k * M stays below 2**53, so every product is exact, and a product by 2**-SHIFT too.

constriction's range coder takes the table without any float rounding that depends on the machine: it is given the
floats f_k - 1 (integers, exact in float32 and float64), whose sum is 2**P - K. Its "leaky" categorical model
(``Categorical(perfect=False)``) computes floor(cumulative * (2**P - K) / sum) + k: with integer cumulatives and a
scale of exactly 1 every step is exact, so its table is f, as the tests check symbol boundary by boundary.
"""

from __future__ import annotations

import functools

import torch

from .tables import exp_table

PRECISION = 24  # constriction's categorical models work with 24-bit frequencies
LOGIT_EXP = 8  # logits are integers in units of 2**-8 nats: rounding them costs about 1e-7 nats per value
LOGIT_BOUND = 2**30  # the logits' clamp: far beyond any real logit, and max - min stays exact
EXP_BITS = 28  # E_0 = 2**28, so T < K * 2**28 and E_k * M < 2**28 * 2**(P + SHIFT - EXP_BITS) = 2**52
SHIFT = EXP_BITS  # M < 2**(P + SHIFT - EXP_BITS) = 2**24 since T >= E_0 = 2**EXP_BITS


def coder_weights(logits: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
    """What constriction's ``Categorical(perfect=False)`` is given for each value: the frequencies minus one, f - 1,
    float64 (..., K) of integers summing to 2**PRECISION - K, from integer ``logits`` (..., K).

    Args:
        logits: integer-valued float64, in units of 2**-LOGIT_EXP.
        table: ``exp_table(LOGIT_EXP, EXP_BITS)`` as float64 on the logits' device (computed if not given).
    """
    if table is None:
        table = exp_table(LOGIT_EXP, EXP_BITS).to(logits.device, torch.float64)
    levels = logits.shape[-1]
    free = 2**PRECISION - levels
    top = logits.max(-1, keepdim=True).values
    gap = torch.sub(top, logits).clamp_(max=len(table) - 1).to(torch.int64)  # beyond the table's end E is 0
    # The first k of the largest logit, as the unique minimum of the distinct keys gap * K + k (gap 0 is the
    # largest logit): no tie rule of any device matters.
    first = torch.add(_positions(levels, logits.device), gap, alpha=levels).argmin(-1, keepdim=True)
    weights = table.index_select(0, gap.reshape(-1)).view(gap.shape)  # (..., K) integers up to 2**EXP_BITS
    total = weights.sum(-1, keepdim=True).to(torch.int64)  # exact: below 2**53 in any order
    scale = torch.div(total.new_tensor(free << SHIFT), total, rounding_mode="floor").to(torch.float64)
    share = weights.mul_(scale.mul_(2.0 ** -SHIFT)).floor_()  # E_k * M * 2**-SHIFT: exact, then floored
    rest = float(free) - share.sum(-1, keepdim=True)  # exact; in [0, 2K)
    return share.scatter_add_(-1, first, rest)


@functools.cache
def _positions(levels: int, device: torch.device) -> torch.Tensor:
    """0, 1, ..., K - 1 (int64), made once per size and device: the decoder asks for them at every value. An
    ordinary tensor even when first asked for in inference mode, so that every pass may read it."""
    with torch.inference_mode(False):
        return torch.arange(levels, device=device)


def frequencies(logits: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
    """Frequencies int64 (..., K), each >= 1 and summing to 2**PRECISION, of integer ``logits`` (..., K)."""
    return coder_weights(logits, table).add_(1).to(torch.int64)
