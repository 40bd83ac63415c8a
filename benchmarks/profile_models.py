"""Where a training step's time goes: torch.profiler on one step of each model, the top operations by self CPU time.

The benchmark configuration (1x28x28, K = 256, 7 layers, h = 64, head 64, batch 16, bf16 autocast, a full
step: forward, backward, RMSProp) on real Fashion-MNIST batches. After ``--warmup`` untimed steps, one step runs
under the profiler; each model gets a markdown table of its ``--top`` most expensive operations and their share of
the step's self CPU time. Self time counts an operation's own work, not that of the operations it calls, so the
shares add up to at most 100%. The header gives the machine's load average: on a busy machine the shares shift.

    python benchmarks/profile_models.py [--models ...] [--batch-size 16] [--precision bf16] [--top 5] [--out prof.md]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from pixelrnn.benchmark import train_speed
from pixelrnn.data import load_dataset
from pixelrnn.models import build_model

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
OPTIONS = dict(layers=7, hidden=64, head=64)


def profile_table(model, batches: list[torch.Tensor], precision: str, warmup: int, top: int) -> list[str]:
    """Markdown rows: the ``top`` operations of one training step by self CPU time, with their share of it."""
    train_speed(model, batches, precision, warmup=0, steps=warmup)  # warm-up, untimed: allocator, kernels
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_speed(model, batches[:1], precision, warmup=0, steps=1)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    rows = ["| operation | calls | self CPU ms | share |", "|---|---|---|---|"]
    for e in events[:top]:
        rows.append(f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e3:.1f} | "
                    f"{100 * e.self_cpu_time_total / total:.0f}% |")
    rows.append(f"| all operations | {sum(e.count for e in events)} | {total / 1e3:.1f} | 100% |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", help="also write the tables (markdown) here")
    args = parser.parse_args()

    data = load_dataset(args.data, "train")
    gen = torch.Generator().manual_seed(0)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [f"One training step, batch {args.batch_size}, {args.precision}, {torch.get_num_threads()} threads, "
             f"load average {load} (1, 5, 15 min), torch {torch.__version__}"]
    print(lines[0], flush=True)
    for name in args.models:
        batches = [data.images[torch.randint(len(data), (args.batch_size,), generator=gen)].long()]
        torch.manual_seed(0)
        model = build_model(name, data.image_shape, data.levels, **OPTIONS)
        table = ["", f"**{name}**", "", *profile_table(model, batches, args.precision, args.warmup, args.top)]
        lines.extend(table)
        print("\n".join(table), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
