"""Numeric precision of the network's matrix work: one list of names, one autocast context.

Training, evaluation and the benchmark all run the network under ``autocast(precision, device)``; the log-softmax,
the loss and the likelihood sums stay in float32/float64 whatever the precision, so bf16 (or fp16) changes speed,
not what is measured. fp16 is offered on CUDA only, where training pairs it with a gradient scaler: the CPU has no
fast fp16 kernels, and bf16 does the same job there (``check_precision`` says so in one line).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")  # fp16 only on CUDA (check_precision)


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The autocast context for a precision name: bf16 (fp16) runs matrix work in bfloat16 (float16), fp32 changes
    nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(torch.device(device).type, dtype=dtype)
    return nullcontext()


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse a precision the device cannot run, with one line that says why."""
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA GPU: on the CPU there are no fast fp16 kernels and its small "
                          "range needs loss scaling; use --precision bf16 on the CPU")
