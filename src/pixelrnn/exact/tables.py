"""Integer lookup tables for the nonlinearities of the exact path: exp (the softmax), sigmoid and tanh (the LSTMs).

A libm ``exp`` may differ in its last bit from one machine (or vector width) to the next, so the exact path never
calls one. Each table entry is an integer computed with Python's :mod:`decimal`, whose ``exp`` is correctly rounded
at the context's precision and is the same software everywhere: entry = the real function's value, scaled by a power
of two, rounded half to even. A table is a pure function of its few integer parameters, so it is computed when
needed (a few thousand ``exp`` calls, milliseconds) and kept; the integer model's fingerprint covers the parameters.

- ``exp_table(in_exp, out_bits)``: E[d] = round(2**out_bits * exp(-d * 2**-in_exp)) for d = 0, 1, ... up to the
  first entry that rounds to 0 (the last entry; every larger d reads it). The softmax of integer logits l_k reads
  E[max(l) - l_k]: ratios of exponentials need no division until the frequencies are made (:mod:`.frequencies`).
- ``sigmoid_table(in_exp, out_bits)``: S[n + N] = round(2**out_bits * sigmoid(n * 2**-in_exp)) for |n| <= N, with N
  the first magnitude at which the entry reaches its limit (2**out_bits, or 0 on the negative side); larger |n|
  read the ends. ``tanh_table`` likewise, between -2**out_bits and 2**out_bits.
"""

from __future__ import annotations

import decimal
from functools import lru_cache

import torch

_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, Emin=-10**6, Emax=10**6)
MAX_ENTRIES = 2**22  # far beyond any table the quantiser makes; a guard against a corrupt integer model


def _round(value: decimal.Decimal) -> int:
    return int(value.to_integral_value(rounding=decimal.ROUND_HALF_EVEN, context=_CONTEXT))


def _exp(x: decimal.Decimal) -> decimal.Decimal:
    return _CONTEXT.exp(x)


def _check(in_exp: int, out_bits: int) -> None:
    if not (0 <= in_exp <= 16 and 1 <= out_bits <= 40):
        raise ValueError(f"no table for input exponent {in_exp} and {out_bits} output bits")


@lru_cache(maxsize=None)
def _exp_entries(in_exp: int, out_bits: int) -> tuple[int, ...]:
    _check(in_exp, out_bits)
    scale, step = decimal.Decimal(2) ** out_bits, decimal.Decimal(2) ** -in_exp
    entries = []
    while len(entries) < MAX_ENTRIES:
        entries.append(_round(scale * _exp(-step * len(entries))))
        if entries[-1] == 0:
            return tuple(entries)
    raise ValueError("the exp table does not reach 0")  # pragma: no cover - guarded by _check


@lru_cache(maxsize=None)
def _sigmoid_entries(in_exp: int, out_bits: int) -> tuple[int, ...]:
    """Entries for n = 0, 1, ..., N of round(2**out_bits * sigmoid(n * 2**-in_exp)); the negative side is their
    mirror 2**out_bits - S[n] (sigmoid(-x) = 1 - sigmoid(x), exactly, and rounding half to even keeps it so but for
    exact halves, which a transcendental value never is)."""
    _check(in_exp, out_bits)
    one, scale, step = decimal.Decimal(1), decimal.Decimal(2) ** out_bits, decimal.Decimal(2) ** -in_exp
    top = 2**out_bits
    entries = []
    while len(entries) < MAX_ENTRIES:
        entries.append(_round(scale * (one / (one + _exp(-step * len(entries))))))
        if entries[-1] == top:
            return tuple(entries)
    raise ValueError("the sigmoid table does not saturate")  # pragma: no cover


@lru_cache(maxsize=None)
def _tanh_entries(in_exp: int, out_bits: int) -> tuple[int, ...]:
    """Entries for n = 0, 1, ..., N of round(2**out_bits * tanh(n * 2**-in_exp)); tanh is odd."""
    _check(in_exp, out_bits)
    one, scale, step = decimal.Decimal(1), decimal.Decimal(2) ** out_bits, decimal.Decimal(2) ** -in_exp
    top = 2**out_bits
    entries = []
    while len(entries) < MAX_ENTRIES:
        e = _exp(-2 * step * len(entries))
        entries.append(_round(scale * ((one - e) / (one + e))))
        if entries[-1] == top:
            return tuple(entries)
    raise ValueError("the tanh table does not saturate")  # pragma: no cover


def exp_table(in_exp: int, out_bits: int) -> torch.Tensor:
    """int64 E[d] = round(2**out_bits * exp(-d / 2**in_exp)), ending with its first 0."""
    return torch.tensor(_exp_entries(in_exp, out_bits), dtype=torch.int64)


def _odd_table(entries: tuple[int, ...], negative) -> torch.Tensor:
    positive = torch.tensor(entries, dtype=torch.int64)
    return torch.cat([negative(positive.flip(0)[:-1]), positive])


def sigmoid_table(in_exp: int, out_bits: int) -> torch.Tensor:
    """int64 S[n + N] for n in [-N, N]: round(2**out_bits * sigmoid(n / 2**in_exp)); N = (len - 1) // 2."""
    return _odd_table(_sigmoid_entries(in_exp, out_bits), lambda p: 2**out_bits - p)


def tanh_table(in_exp: int, out_bits: int) -> torch.Tensor:
    """int64 T[n + N] for n in [-N, N]: round(2**out_bits * tanh(n / 2**in_exp)); N = (len - 1) // 2."""
    return _odd_table(_tanh_entries(in_exp, out_bits), lambda p: -p)


def lookup(table: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """An odd-centred table (sigmoid, tanh) at the integers ``n`` (float64), clamped to its ends; in the table's
    dtype (float64 tables give float64 values, exactly: every entry is an integer below 2**53)."""
    half = (len(table) - 1) // 2
    index = n.clamp(-half, half).add_(half).to(torch.int64)
    return table.index_select(0, index.reshape(-1)).view(index.shape)  # a gather; several times table[index]'s speed
