"""Evaluation speed against batch size: images per second of an exact fp32 likelihood pass, for each model.

Scoring a split ("Pixel Recurrent Neural Networks", van den Oord et al., ICML 2016, reports bits/dim over whole test
sets) is one forward pass per batch, so only speed depends on the batch size. On a CPU a big batch is not free: a
7-layer Row LSTM at h = 64 holds [B, 4h, H, W] gate maps per layer, 205 MB at B = 256 against 13 MB at B = 16, and
maps that spill out of the caches make every layer memory-bound. This table is what the CPU default of
``pixelrnn.devices.eval_batch_size`` rests on.

Each model (1x28x28, K = 256, 7 layers, h = 64, head 64, random weights: speed does not depend on their values)
scores the same ``--images`` images at every batch size, after one untimed warm-up batch; each time is the best of
``--repeats``. Ratios are to the largest batch size, measured side by side in one run. The allocator is tuned as the
``pixelrnn`` command tunes it (:mod:`pixelrnn.allocator`); ``PIXELRNN_DEFAULT_MALLOC=1`` keeps glibc's defaults, as
a Python program that imports the library gets them.

    python benchmarks/eval_speed.py [--models ...] [--batch-sizes 256 64 16 8] [--images 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import os

import torch

from pixelrnn.allocator import tune
from pixelrnn.evaluate import evaluate
from pixelrnn.models import build_model

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")


def images_per_second(model, images: torch.Tensor, batch_size: int, repeats: int) -> float:
    evaluate(model, images[:batch_size], batch_size=batch_size)  # warm-up: allocator, oneDNN primitives
    best = min(evaluate(model, images, batch_size=batch_size)["seconds"] for _ in range(repeats))
    return len(images) / best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[256, 64, 16, 8])
    p.add_argument("--images", type=int, default=256, help="images scored per measurement")
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    if max(args.batch_sizes) > args.images:
        p.error(f"--images ({args.images}) must be at least the largest batch size ({max(args.batch_sizes)})")
    tuned = tune()  # as the pixelrnn command does (PIXELRNN_DEFAULT_MALLOC=1: glibc's defaults, as a Python caller)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.images, 1, args.size, args.size))
    largest = max(args.batch_sizes)
    print(f"# fp32 evaluation, {args.images} images of 1x{args.size}x{args.size}, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}, "
          f"allocator {'tuned as the pixelrnn command' if tuned else 'glibc defaults'}")
    print("| model | " + " | ".join(f"batch {b}" for b in args.batch_sizes) + " |")
    print("|---|" + "---|" * len(args.batch_sizes))
    for name in args.models:
        model = build_model(name, image_shape=(1, args.size, args.size), levels=256, layers=7, hidden=64, head=64)
        rates = {b: images_per_second(model, images, b, args.repeats) for b in args.batch_sizes}
        cells = [f"{rates[b]:.1f} img/s ({rates[b] / rates[largest]:.2f}x)" for b in args.batch_sizes]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
