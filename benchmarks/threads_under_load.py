"""Training steps quiet and with one core busy: what choosing the recurrent scans' threads by their work buys.

The recurrent scans of training (``RowScan``, ``DiagonalScan``, ``RowWavefront``) are loops of small dependent
steps. Split over several threads, a small step gains little on a quiet machine, and each waits for the other
threads' time slices as soon as another process is busy. So each scan runs on the threads that fit the product of
one step (``pixelrnn.devices.threads_for_steps``: one thread below ``SMALL_STEP_FLOPS``), and the large products
around it (convolutions, the weights' gradients) on the caller's threads.

For each model (1x28x28, K = 256, 7 layers, h = 64, head 64, a full training step: forward, backward, RMSProp) this
times the median step four ways: quiet and with one core busy (a process spinning beside this one), each with the
scans' thread choice and with every scan on the caller's threads (as before the choice). The last columns are the
busy / quiet ratios; the target is a busy step within 2x of a quiet one. Last, with one core busy, the steps of
``pixelrnn train --threads fit`` (:mod:`pixelrnn.threads`: the thread count follows the cores the other processes
leave free), against a quiet step on all threads. Run it on an otherwise quiet machine, with two or more threads
(the header says how many).

    python benchmarks/threads_under_load.py [--models ...] [--batch-size 16] [--precision fp32] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import contextmanager

import torch

from pixelrnn import devices
from pixelrnn.allocator import tune
from pixelrnn.benchmark import train_speed
from pixelrnn.config import TrainConfig
from pixelrnn.devices import cpu_name, num_threads
from pixelrnn.models import build_model
from pixelrnn.precision import resolve_precision
from pixelrnn.threads import ThreadFitter
from pixelrnn.train import make_optimizer, train_step
from sample_speed import busy_core  # the same spinner as the sampling benchmark's

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
OPTIONS = dict(layers=7, hidden=64, head=64)


@contextmanager
def scan_threads(choose: bool):
    """With ``choose`` False, every step counts as large: the scans run on the caller's threads."""
    small = devices.SMALL_STEP_FLOPS
    if not choose:
        devices.SMALL_STEP_FLOPS = 0
    try:
        yield
    finally:
        devices.SMALL_STEP_FLOPS = small


def fitted_step_seconds(model, batches, precision: str, warmup: int, steps: int) -> tuple[float, int]:
    """Median training step with ``pixelrnn train --threads fit``'s fitter looking at the load between steps (every
    second here), after ``warmup`` steps and its first look; and the thread count it settled on."""
    precision = resolve_precision(precision, batches[0].device)
    optimizer = make_optimizer(TrainConfig(lr=1e-4), model.parameters())
    with num_threads(torch.get_num_threads()):  # the fitter changes the count: put it back afterwards
        fitter = ThreadFitter(torch.get_num_threads(), every_s=1.0)
        began, times, k = time.monotonic(), [], 0
        while len(times) < steps:
            start = time.perf_counter()
            train_step(model, optimizer, [(batches[k % len(batches)], None)], precision, TrainConfig.grad_clip)
            seconds = time.perf_counter() - start
            looked = time.monotonic() - began >= fitter.every_s  # the fitter has had its first look
            if fitter.between_steps() is None and looked and k >= warmup:  # a step on settled threads
                times.append(seconds)
            k += 1
        return statistics.median(times), fitter.threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", default="auto", help="fp32, bf16, or auto (bf16 where native)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune()  # as the pixelrnn command does: fewer page faults in training

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"precision {args.precision}, load average before {load} (1, 5, 15 min)\n", flush=True)
    print("| model | quiet, chosen s | quiet, all threads s | busy, chosen s | busy, all threads s | "
          "busy / quiet, chosen | busy / quiet, all threads | busy, --threads fit s (threads) | "
          "busy, fit / quiet, all threads |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (args.batch_size, 1, 28, 28), generator=gen) for _ in range(2)]
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, (1, 28, 28), 256, **OPTIONS)
        seconds = {}
        for busy in (False, True):
            with busy_core(busy):
                for choose in (True, False):
                    with scan_threads(choose):
                        result = train_speed(model, batches, args.precision, warmup=args.warmup, steps=args.steps)
                    seconds[busy, choose] = result["step_seconds"]
                if busy:
                    fitted, settled = fitted_step_seconds(model, batches, args.precision, args.warmup, args.steps)
        print(f"| {name} | {seconds[False, True]:.3f} | {seconds[False, False]:.3f} | {seconds[True, True]:.3f} | "
              f"{seconds[True, False]:.3f} | {seconds[True, True] / seconds[False, True]:.2f}x | "
              f"{seconds[True, False] / seconds[False, False]:.2f}x | {fitted:.3f} ({settled}) | "
              f"{fitted / seconds[False, False]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
