"""glibc allocator settings for training on the CPU.

A training step allocates and frees many large, short-lived tensors (activations and their gradients). With glibc's
default settings each large block is a fresh mmap, returned to the kernel when freed, so the next step page-faults
it in again: measured here, a Diagonal BiLSTM training step spent a large share of its time in the kernel. Keeping
freed memory in the process (no mmap for large blocks, no trimming of the heap) removes most of those faults.

:func:`tune` applies this through ``mallopt`` at the start of the ``pixelrnn`` command (see ``cli.main``). It does
nothing off glibc, and ``PIXELRNN_DEFAULT_MALLOC=1`` turns it off. The cost is memory: the process keeps its peak
heap instead of returning it between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
KEEP = 1 << 30  # bytes of free heap kept before trimming, and padding added to each heap growth


def tune() -> bool:
    """Keep freed memory in the process instead of unmapping it; True if the settings were applied."""
    if os.environ.get("PIXELRNN_DEFAULT_MALLOC", "0") not in ("", "0"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return False
    return all(mallopt(param, value) == 1 for param, value in
               [(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, KEEP), (M_TOP_PAD, 64 << 20)])
