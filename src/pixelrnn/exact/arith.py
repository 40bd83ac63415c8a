"""Exact integer arithmetic on float64 tensors: the rules that make a result the same on every machine.

The codec needs the probabilities of every value bit-identical wherever a file is encoded or decoded (any CPU,
BLAS, thread count or GPU). Floating-point results are not: the order of a sum changes its last bits. Integers are:
a sum of integers is the same in every order as long as no partial sum leaves the range where the numbers are
exact. The approach of Ballé, Johnston and Minnen, "Integer networks for data compression with latent-variable
models" (ICLR 2019), here in this form:

- every value is an integer held in a float64 tensor (``Fixed``: the integers ``values`` stand for
  ``values * 2**-exp``); float64 holds every integer of magnitude up to 2**53 exactly, on any IEEE-754 machine;
- a layer's weights are integers too, and before a layer is used its worst case is **proved** to stay in range:
  per output, the sum of |weight| times the largest |input| plus |bias| must stay below 2**53
  (:func:`check_exact`). Every partial sum of a matrix product, in whatever order the BLAS, the threads or the GPU
  add it up, is bounded by that sum, so every one is exact, and so is the result;
- scales are powers of two, so rescaling is a multiplication by 2**k (exact) followed by one fixed rounding rule,
  round half up: ``floor(acc * 2**-s + 1/2)`` computed as ``floor((acc + 2**(s-1)) * 2**-s)`` (:func:`rescale`),
  then a clamp to the activation range;
- convolutions are gathers (padding, slicing, indexing: pure copies) and one matrix product; never ``conv2d``,
  whose algorithms (FFT, Winograd, ...) depend on the machine.

Nothing here calls libm: the nonlinearities come from integer tables (:mod:`.tables`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..errors import ConfigError

EXACT_LIMIT = 2**53  # every integer of magnitude below this is exact in float64
DTYPE = torch.float64


class Fixed(NamedTuple):
    """A fixed-point tensor: the integers ``values`` (float64) stand for ``values * 2**-exp``."""

    values: torch.Tensor
    exp: int

    def real(self) -> torch.Tensor:
        """The real values (for tests and calibration reports only; nothing exact reads them)."""
        return self.values * 2.0 ** -self.exp


def relu(q: Fixed) -> Fixed:
    return Fixed(q.values.clamp_min(0), q.exp)


def pow2(k: int) -> float:
    """2**k as a float64, exactly (k within float64's normal range)."""
    return float(2.0 ** k)


def rescale(acc: torch.Tensor, shift: int, bound: int) -> torch.Tensor:
    """``acc * 2**-shift`` rounded half up to an integer, then clamped to [-bound, bound].

    Exact when |acc| + 2**(shift - 1) < 2**53 (checked when a layer is quantised): adding a power of two to such an
    integer, multiplying by a power of two and taking the floor are then exact IEEE operations.
    """
    if shift > 0:
        out = torch.floor((acc + pow2(shift - 1)) * pow2(-shift))
    elif shift < 0:
        out = acc * pow2(-shift)
    else:
        out = acc.clone()
    return out.clamp_(-bound, bound)


def rescale_(acc: torch.Tensor, shift: int, bound: int) -> torch.Tensor:
    """:func:`rescale` in place, on an accumulator no one else reads: the same integers, with no temporaries."""
    if shift > 0:
        return acc.add_(pow2(shift - 1)).mul_(pow2(-shift)).floor_().clamp_(-bound, bound)
    if shift < 0:
        acc.mul_(pow2(-shift))
    return acc.clamp_(-bound, bound)


def bound_of(bits: int) -> int:
    """The largest magnitude of a ``bits``-bit signed activation (symmetric: -bound..bound)."""
    return 2 ** (bits - 1) - 1


def check_exact(name: str, worst: int) -> None:
    """Refuse a layer whose worst-case partial sum (an exact Python int) could leave float64's exact integers."""
    if worst >= EXACT_LIMIT:
        raise ConfigError(f"layer {name} cannot be computed exactly: its largest possible sum is about "
                          f"2**{worst.bit_length() - 1}, beyond float64's exact integers (2**53); quantise with fewer "
                          "weight or activation bits")


def worst_case(weight: torch.Tensor, in_bound: int, bias: torch.Tensor | None = None) -> int:
    """The largest |sum| one output of ``x @ weight + bias`` can reach with |x| <= in_bound, as an exact int.

    Args:
        weight: integer-valued (fan_in, out).
        in_bound: the largest |input|.
        bias: integer-valued (out,), or None.
    """
    l1 = weight.abs().sum(0)  # exact: integers far below 2**53 (each |w| < 2**31, fan-in < 2**22)
    worst = max((int(v) for v in l1.tolist()), default=0) * in_bound
    if bias is not None and bias.numel():
        worst += int(bias.abs().max())
    return worst


def choose_exp(max_abs: int, acc_exp: int, bits: int, headroom_bits: int) -> int:
    """The finest output exponent s <= acc_exp at which ``max_abs`` (an accumulator of exponent ``acc_exp``) fits
    ``bits``-bit activations with ``headroom_bits`` to spare. Exact integer arithmetic only: the same on any machine.

    A value of ``max_abs * 2**(s - acc_exp)`` must satisfy value * 2**headroom_bits <= bound_of(bits).
    """
    limit = bound_of(bits)
    if max_abs == 0:
        return acc_exp
    k = 0  # s = acc_exp + k, k <= 0
    while True:
        e = k + headroom_bits
        fits = (max_abs << e) <= limit if e >= 0 else max_abs <= (limit << -e)
        if fits:
            return acc_exp + k
        k -= 1


def quantize_tensor(w: torch.Tensor, bits: int, divisor: int = 1, max_exp: int = 60) -> tuple[torch.Tensor, int]:
    """Integers ``round_half_even(w / divisor * 2**t)`` with the largest t that keeps them within ``bits`` bits
    (clamped to +-(2**(bits - 1) - 1), which only the largest entry can reach).

    Deterministic on every IEEE-754 machine: float64 division is correctly rounded, scaling by 2**t is exact, and
    rounding half to even is exact. ``t`` comes from ``frexp`` of max|w / divisor|, an exact operation.

    Returns:
        (integers as float64, t).
    """
    w = w.detach().to("cpu", DTYPE)
    if divisor != 1:
        w = w / float(divisor)
    top = float(w.abs().max()) if w.numel() else 0.0
    if top == 0.0:
        return torch.zeros_like(w), 0
    _, e = math.frexp(top)  # top = m * 2**e with 0.5 <= m < 1: exact, it reads the exponent bits
    t = min(bits - 1 - e, max_exp)
    limit = bound_of(bits)  # the largest entry may round up to 2**(bits - 1): keep it a signed ``bits``-bit integer
    return torch.round(w * pow2(t)).clamp_(-limit, limit), t  # torch.round: half to even


def quantize_at(b: torch.Tensor, exp: int) -> torch.Tensor:
    """Integers ``round_half_even(b * 2**exp)`` (a bias at its accumulator's exponent)."""
    return torch.round(b.detach().to("cpu", DTYPE) * pow2(exp))


def align(qs: list[Fixed]) -> tuple[torch.Tensor, int]:
    """The exact sum of fixed-point tensors at the finest of their exponents: (integers, exponent)."""
    top = max(q.exp for q in qs)
    total = None
    for q in qs:
        part = q.values * pow2(top - q.exp) if q.exp != top else q.values
        total = part if total is None else total + part
    return total, top
