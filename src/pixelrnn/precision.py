"""Numeric precision of the network's matrix work: one list of names, the choice of "auto", one autocast context.

Training, evaluation and the benchmark all run the network under ``autocast(precision, device)``; the log-softmax,
the loss and the likelihood sums stay in float32/float64 whatever the precision, so bf16 (or fp16) changes speed,
not what is measured. fp16 is offered on CUDA only, where training pairs it with a gradient scaler: the CPU has no
fast fp16 kernels, and bf16 does the same job there (``check_precision`` says so in one line).

bf16 pays only where the hardware multiplies in it: a CPU with AVX-512 bf16 or AMX, a CUDA GPU of compute capability
8.0 or later. Elsewhere torch emulates it, and bf16 training runs many times slower than fp32 (10-40x on a CPU with
AVX2 only). "auto", the default, is therefore bf16 where the device runs it natively and fp32 elsewhere
(:func:`resolve_precision`): what torch reports, confirmed on the CPU by timing one small matrix product in both,
once per process.
"""

from __future__ import annotations

import functools
import math
import time
from contextlib import nullcontext

import torch

from .devices import num_threads
from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: resolve_precision; fp16 only on CUDA (check_precision)
# A native bf16 product takes at most about as long as the fp32 one (AMX: half as long or less); an emulated one
# takes 5x (AVX-512 without bf16) to 150x (AVX2) as long. A ratio above this counts as emulated: bf16 then buys no
# speed. It lies far from both, so that timing noise cannot tip the decision.
NATIVE_SLOWDOWN = 2.0
PROBE_SIZE = 256  # the probe's matrices: big enough to reach the bf16 kernels, small enough to take milliseconds
PROBE_SECONDS = 0.01  # enough for the best of a few fast products; a slow one is clear at once


def autocast(precision: str, device: torch.device | str = "cpu"):
    """The autocast context for a precision name: bf16 (fp16) runs matrix work in bfloat16 (float16), fp32 changes
    nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":  # which of bf16 and fp32 depends on the device: the caller decides once, up front
        raise ValueError('resolve "auto" first: autocast(resolve_precision(precision, device), device)')
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(torch.device(device).type, dtype=dtype)
    return nullcontext()


def autocast_off(device: torch.device | str):
    """A block without autocast on ``device`` (a fast scan that picks its dtypes itself); a device type that has no
    autocast (``meta``) needs nothing turned off."""
    device_type = torch.device(device).type
    if not torch.amp.is_autocast_available(device_type):
        return nullcontext()
    return torch.autocast(device_type, enabled=False)


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse a precision the device cannot run (or an unknown name), with one line that says why."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA GPU: on the CPU there are no fast fp16 kernels and its small "
                          "range needs loss scaling; use --precision auto on the CPU (bf16 where it runs natively)")


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision to run: "auto" becomes "bf16" where ``device`` runs bf16 natively, else "fp32".

    Args:
        precision: one of :data:`PRECISIONS`; any but "auto" is returned as it is, once ``check_precision`` has
            accepted it.
        device: where the network runs.

    Returns:
        "fp32", "bf16" or "fp16".
    """
    check_precision(precision, device)
    if precision != "auto":
        return precision
    return "bf16" if bf16_is_native(device) else "fp32"


def emulation_warning(precision: str, device: torch.device | str) -> str | None:
    """One warning line for bf16 asked for by name on a device that emulates it, with the measured slowdown.

    Args:
        precision: the precision as given (only "bf16" can warn: "auto" never picks an emulated bf16).
        device: where the network runs.

    Returns:
        The line, or None where there is nothing to warn of.
    """
    if precision != "bf16" or torch.device(device).type not in ("cpu", "cuda") or bf16_is_native(device):
        return None
    slowdown = bf16_slowdown(device)
    if slowdown < NATIVE_SLOWDOWN:  # emulated, but not slow enough here to be worth a word
        return None
    what = ("this CPU has no native bf16 (no AVX-512 bf16 or AMX)" if torch.device(device).type == "cpu"
            else "this GPU has no native bf16 (that needs compute capability 8.0 or later)")
    return (f"warning: {what}: bf16 matrix products run {slowdown:.0f}x slower than fp32 here; "
            f"--precision auto or fp32 is faster")


def bf16_is_native(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 matrix products natively (decided once per device and process).

    On a CUDA GPU: what torch reports, emulation excluded. On the CPU: what oneDNN reports (AVX-512 bf16 or AMX),
    confirmed by :func:`bf16_slowdown`; where torch cannot say, the timing alone decides. Other devices: no.
    """
    return _native(_device(device))


def bf16_slowdown(device: torch.device | str) -> float:
    """How many times longer a bf16 matrix product takes than the fp32 one on ``device``: one timing of a
    ``PROBE_SIZE`` square product in each, of a few milliseconds, kept for the process."""
    return _slowdown(_device(device))


def _device(device: torch.device | str) -> torch.device:
    """``device`` as a cache key: "cuda" names the current GPU by its index."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


@functools.cache
def _native(device: torch.device) -> bool:
    if device.type == "cuda":
        with torch.cuda.device(device):
            try:
                return torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # an older torch, which counts no emulation as support
                return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if _cpu_reports_bf16() is False:
        return False
    return bf16_slowdown(device) < NATIVE_SLOWDOWN


def _cpu_reports_bf16() -> bool | None:
    """What this torch build says of the CPU's bf16 support, or None where it cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a private op: missing from some builds, raising on others
        return None


@functools.cache
def _slowdown(device: torch.device) -> float:
    if device.type != "cpu":
        return _matmul_seconds(torch.bfloat16, device) / _matmul_seconds(torch.float32, device)
    # On one thread: a 0.1 ms product split over threads waits for each of them, and on a busy machine that wait,
    # not the product, is what would be timed (ratios then swing from 0.5 to 3 where one thread gives 0.25 each time).
    with num_threads(1):
        return _matmul_seconds(torch.bfloat16, device) / _matmul_seconds(torch.float32, device)


def _matmul_seconds(dtype: torch.dtype, device: torch.device, warmup: int = 2, repeats: int = 5) -> float:
    """The best of ``repeats`` timings of one product of two ``PROBE_SIZE`` square matrices.

    The untimed first products pay for kernel selection, packing and the start of the thread pool (milliseconds
    that would swamp a 0.1 ms product); the best time, not the mean, leaves out what other processes took. An
    emulated product takes milliseconds each, so the timing stops once it has one after ``PROBE_SECONDS``. Its own
    generator leaves the global RNG as it was.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(PROBE_SIZE, PROBE_SIZE, generator=gen).to(device, dtype)
    b = torch.rand(PROBE_SIZE, PROBE_SIZE, generator=gen).to(device, dtype)
    best, began = math.inf, time.perf_counter()
    for k in range(warmup + repeats):
        if best < math.inf and time.perf_counter() - began > PROBE_SECONDS:
            break
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # GPU work is asynchronous: time it to the end
        if k >= warmup:
            best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)
