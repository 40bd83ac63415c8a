"""Intra-op threads that fit the machine as it is now: fewer while other processes keep cores busy.

A training step split over every core waits, at the end of each parallel region, for the thread whose core another
process holds. With one of two cores busy, a two-thread training step (1x28x28, 7 layers, h = 64) ran 2.2 times
slower than quiet for the PixelCNN, 5 times for the Diagonal BiLSTM and 27 times for the Row LSTM, whose scans are
hundreds of small parallel regions (``benchmarks/threads_under_load.py``); on one thread the same steps are only
1.4 to 1.9 times slower than on two quiet cores. :class:`ThreadFitter` measures, between steps, how much CPU time
the other processes of the machine took (Linux's ``/proc/stat``: the busy time of all cores, less this process's
own), and runs the next steps on the cores they leave free, back up to the full count once they are gone.

This is ``pixelrnn train --threads fit``. A run's floats depend on its thread count (a product split over more
threads adds in another order), so a run whose count changes with the load is not reproduced bit for bit by
another; a fixed ``--threads N`` (or none: torch's setting) keeps that.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import torch

# How often the load is looked at (seconds of wall time): long enough that the CPU times differ by many clock
# ticks, short enough to follow a process that starts or stops.
CHECK_EVERY_S = 2.0
# A core counts as held by others when they took this share of it: below it, short bursts (a shell, a logger)
# would halve a training for nothing.
HELD_SHARE = 0.6


def machine_busy_seconds(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU seconds all cores of the machine have spent busy since boot (Linux), or None where it cannot be read."""
    try:
        fields = stat.read_text().splitlines()[0].split()
        ticks = [int(v) for v in fields[1:]]
    except (OSError, IndexError, ValueError):
        return None
    if fields[0] != "cpu" or len(ticks) < 4:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def own_busy_seconds() -> float:
    """CPU seconds this process (all its threads) has spent, user and system."""
    t = os.times()
    return t.user + t.system


def cores_of_machine() -> int:
    return os.cpu_count() or 1


class ThreadFitter:
    """Between training steps, sets torch's intra-op threads to the cores the other processes leave free.

    Args:
        most: the thread count when the machine is quiet (the user's, or torch's default).
        machine, own, clock, cores: what it measures (replaceable for tests): the machine's busy CPU seconds, this
            process's, the wall clock, the machine's core count.
    """

    def __init__(self, most: int, machine: Callable[[], float | None] = machine_busy_seconds,
                 own: Callable[[], float] = own_busy_seconds, clock: Callable[[], float] = time.monotonic,
                 cores: Callable[[], int] = cores_of_machine, every_s: float = CHECK_EVERY_S):
        self.most = max(1, most)
        self.machine, self.own, self.clock, self.cores, self.every_s = machine, own, clock, cores, every_s
        self.threads = self.most
        self._mark = self._sample()

    def _sample(self) -> tuple[float, float | None, float]:
        return self.clock(), self.machine(), self.own()

    def others_cores(self) -> float | None:
        """Cores the other processes kept busy since the last look (None where the machine cannot be read)."""
        (then, machine_then, own_then), (now, machine_now, own_now) = self._mark, self._sample()
        self._mark = (now, machine_now, own_now)
        if machine_then is None or machine_now is None or now <= then:
            return None
        return max(0.0, (machine_now - machine_then) - (own_now - own_then)) / (now - then)

    def between_steps(self) -> int | None:
        """Look at the load if it is time to; returns the new thread count when it changed (and sets it), else
        None."""
        if self.most == 1 or self.clock() - self._mark[0] < self.every_s:
            return None
        others = self.others_cores()
        if others is None:
            return None
        held = int(others + (1 - HELD_SHARE))  # whole cores held by others, counting one from HELD_SHARE of it
        threads = max(1, min(self.most, self.cores() - held))
        if threads == self.threads:
            return None
        self.threads = threads
        torch.set_num_threads(threads)
        return threads
