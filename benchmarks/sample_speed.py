"""Sampling speed: the fast step-wise path against the naive one, for each model, in one run.

Seconds to sample 16 images of 1x28x28 (K = 256, 7 layers, h = 64, head 64) with each method, and the ratio. The
naive method runs the whole network once per value (784 forward passes); the fast one evaluates each layer at the
new pixel only. Both draw the same images from the same generator (tested in tests/test_generate.py; checked again here).

The naive method costs the same full forward pass for every value, so its time is linear in the number of values
drawn. ``--naive-rows R`` times it on the first R rows only (the rest given as known, so no pass runs for them) and
scales the time by H / R; the table says so. Its images are compared with the fast method's on those rows.

    python benchmarks/sample_speed.py [--models ...] [--n 16] [--size 28] [--naive-rows R] [--out table.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("-n", "--n", type=int, default=16)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--naive-rows", type=int, help="time the naive method on this many rows and scale up")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()

    rows = args.naive_rows
    naive_note = f" (timed on {rows} of {args.size} rows, scaled)" if rows else ""
    lines = [f"{args.n} images of 1x{args.size}x{args.size}, K = 256, 7 layers, h = 64, head 64; "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads", "",
             f"| model | fast s | naive s{naive_note} | naive / fast | same images |", "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, (1, args.size, args.size), 256, layers=7, hidden=64, head=64).eval()
        fast_s, fast = seconds_to_sample(model, args.n, "fast")
        naive_s, naive = seconds_to_sample(model, args.n, "naive", rows)
        if rows:
            naive_s *= args.size / rows
            fast, naive = fast[:, :, :rows], naive[:, :, :rows]
        same = torch.equal(fast, naive)
        line = f"| {name} | {fast_s:.2f} | {naive_s:.1f} | {naive_s / fast_s:.0f}x | {same} |"
        lines.append(line)
        print(line, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
