"""Sampling speed: the fast step-wise path against the naive one, for each model, in one run.

Seconds to sample 16 images of 1x28x28 (K = 256, 7 layers, h = 64, head 64) with each method, and the ratio. The
naive method runs the whole network once per value (784 forward passes); the fast one evaluates each layer at the
new pixel only. Both draw the same images from the same generator (tested in tests/test_generate.py; checked again here).

The naive method costs the same full forward pass for every value, so its time is linear in the number of values
drawn. ``--naive-rows R`` times it on the first R rows only (the rest given as known, so no pass runs for them) and
scales the time by H / R; the table says so. Its images are compared with the fast method's on those rows.

``--threads`` replaces the naive comparison by a thread table: seconds of the fast path, called twice
in a row, with the walk's own thread choice (one thread for small steps, ``pixelrnn.generate.step_threads``) and with
every thread forced. ``--loaded`` keeps a second process busy on one core for the whole run, as when sampling while a
training runs. The header gives the load average.

    python benchmarks/sample_speed.py [--models ...] [--n 16] [--size 28] [--naive-rows R] [--out table.md]
    python benchmarks/sample_speed.py --threads [--loaded] [--n 16 256]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from pixelrnn import generate
from pixelrnn.models import build_model

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")


def seconds_to_sample(model, n: int, method: str, rows: int | None = None) -> tuple[float, torch.Tensor]:
    """Seconds to draw n images (only their first ``rows`` rows, if given), and the images."""
    x = torch.zeros(n, *model.image_shape, dtype=torch.long)
    known = torch.zeros_like(x, dtype=torch.bool)
    if rows is not None:
        known[:, :, rows:] = True
    start = time.perf_counter()
    x = model.complete(x, known, generator=torch.Generator().manual_seed(0), method=method)
    return time.perf_counter() - start, x


def _spin(parent: int) -> None:
    while os.getppid() == parent:  # busy until the benchmark ends, even if it is killed
        pass


@contextmanager
def busy_core(enabled: bool):
    """While the block runs, a second process keeps one core busy (if ``enabled``)."""
    if not enabled:
        yield
        return
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, args=(os.getpid(),), daemon=True)
    spinner.start()
    try:
        time.sleep(0.5)  # let it get scheduled
        yield
    finally:
        spinner.terminate()
        spinner.join()


def thread_table(models: list[str], batches: list[int], size: int) -> list[str]:
    """Fast sampling, two calls in a row, with the walk's thread choice and with every thread forced."""
    threads = torch.get_num_threads()
    lines = [f"| model | batch | threads (auto) | auto 1st s | auto 2nd s | {threads} threads 1st s | "
             f"{threads} threads 2nd s | forced / auto (2nd) |", "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    small = generate.SMALL_STEP_FLOPS
    for name in models:
        torch.manual_seed(0)
        model = build_model(name, (1, size, size), 256, layers=7, hidden=64, head=64).eval()
        for n in batches:
            auto = [seconds_to_sample(model, n, "fast")[0] for _ in range(2)]
            generate.SMALL_STEP_FLOPS = 0  # every step counts as large: the caller's threads
            try:
                forced = [seconds_to_sample(model, n, "fast")[0] for _ in range(2)]
            finally:
                generate.SMALL_STEP_FLOPS = small
            line = (f"| {name} | {n} | {generate.step_threads(model, n)} | {auto[0]:.2f} | {auto[1]:.2f} | "
                    f"{forced[0]:.2f} | {forced[1]:.2f} | {forced[1] / auto[1]:.1f}x |")
            lines.append(line)
            print(line, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("-n", "--n", type=int, nargs="+", default=[16])
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--naive-rows", type=int, help="time the naive method on this many rows and scale up")
    parser.add_argument("--threads", action="store_true", help="the thread table instead of fast vs naive")
    parser.add_argument("--loaded", action="store_true", help="keep a second process busy on one core meanwhile")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    header = (f"1x{args.size}x{args.size}, K = 256, 7 layers, h = 64, head 64; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, load average {load} (1, 5, 15 min)"
              f"{', a second process busy on one core' if args.loaded else ''}")
    print(header, "", sep="\n", flush=True)
    with busy_core(args.loaded):
        if args.threads:
            lines = thread_table(args.models, args.n, args.size)
        else:
            lines = naive_table(args)
    if args.out:
        Path(args.out).write_text("\n".join([header, "", *lines]) + "\n")


def naive_table(args) -> list[str]:
    """Fast against naive sampling of ``args.n[0]`` images, for each model."""
    n = args.n[0]
    rows = args.naive_rows
    naive_note = f" (timed on {rows} of {args.size} rows, scaled)" if rows else ""
    lines = [f"{n} images", "", f"| model | fast s | naive s{naive_note} | naive / fast | same images |",
             "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, (1, args.size, args.size), 256, layers=7, hidden=64, head=64).eval()
        fast_s, fast = seconds_to_sample(model, n, "fast")
        naive_s, naive = seconds_to_sample(model, n, "naive", rows)
        if rows:
            naive_s *= args.size / rows
            fast, naive = fast[:, :, :rows], naive[:, :, :rows]
        same = torch.equal(fast, naive)
        line = f"| {name} | {fast_s:.2f} | {naive_s:.1f} | {naive_s / fast_s:.0f}x | {same} |"
        lines.append(line)
        print(line, flush=True)
    return lines


if __name__ == "__main__":
    main()
