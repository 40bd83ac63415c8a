"""Training throughput of the three model families on real Fashion-MNIST batches.

For each model (1x28x28, K = 256, 7 layers, h = 64, head 64), batch size and precision: training images/s (the median
full step after warm-up: forward, backward, RMSProp) and the achieved GFLOP/s (FLOPs of one forward and backward
pass, counted by torch.utils.flop_counter, over the median step time), next to this machine's dense matmul GFLOP/s in
fp32 and bf16, measured in the same run. The last column is the share of the machine's limit: images/s x the fixed work per image
(1.475 GFLOP PixelCNN, 4.71 Row LSTM, 5.25 Diagonal BiLSTM; ``pixelrnn.benchmark.WORK_PER_IMAGE_GFLOP``) over the
bf16 matmul rate of this run, whatever the precision of the row. The header gives the machine's load average: on a
busy machine the absolute figures mean little.

    python benchmarks/train_speed.py [--models ...] [--batch-sizes 16 64] [--steps 8] [--out table.md]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from pixelrnn.benchmark import matmul_gflops, share_of_matmul, train_speed, training_flops
from pixelrnn.data import load_dataset
from pixelrnn.models import build_model

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
OPTIONS = dict(layers=7, hidden=64, head=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()

    data = load_dataset(args.data, "train")
    gen = torch.Generator().manual_seed(0)
    peak = {p: matmul_gflops(p) for p in dict.fromkeys([*args.precisions, "bf16"])}
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
             f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min), torch {torch.__version__}",
             "matmul GFLOP/s: " + ", ".join(f"{p} {v:.0f}" for p, v in peak.items()), "",
             "| model | batch | precision | images/s | step s | GFLOP/step | GFLOP/s | % of matmul | share of bf16 |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        for batch_size in args.batch_sizes:
            batches = [data.images[torch.randint(len(data), (batch_size,), generator=gen)].long() for _ in range(4)]
            torch.manual_seed(0)
            model = build_model(name, data.image_shape, data.levels, **OPTIONS)
            flops = training_flops(model, batches[0])
            for precision in args.precisions:
                result = train_speed(model, batches, precision, warmup=args.warmup, steps=args.steps)
                gflops = flops / result["step_seconds"] / 1e9
                line = (f"| {name} | {batch_size} | {precision} | {result['images_per_s']:.1f} | "
                        f"{result['step_seconds']:.3f} | {flops / 1e9:.1f} | {gflops:.0f} | "
                        f"{100 * gflops / peak[precision]:.0f}% | "
                        f"{100 * share_of_matmul(name, result['images_per_s'], peak['bf16']):.0f}% |")
                lines.append(line)
                print(line, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
