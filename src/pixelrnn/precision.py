"""Numeric precision of the network's matrix work: one list of names, one autocast context.

Training, evaluation and the benchmark all run the network under ``autocast(precision)``; the loss and likelihood
sums stay in float32/float64 whatever the precision, so bf16 changes speed, not what is measured.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The autocast context for a precision name: bf16 runs matrix work in bfloat16, fp32 changes nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()
