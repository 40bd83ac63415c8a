"""Training images/s on one machine: 1 process x 2 threads against 2 processes x 1 thread (DDP under torchrun).

Each model at 1x28x28, K = 256, 7 layers, h = 64, output head 64 (the fashion-* presets), at global batches 16 and
64, on random images (speed does not depend on the pixels). A step is the training loop's step: autocast off
(fp32), bits/dim loss, backward, DDP's gradient average, RMSProp. Prints a markdown table.

    python benchmarks/scaling.py [--steps 6] [--models pixelcnn row_lstm] [--batches 16 64] [--device cpu|cuda]

With ``--device cuda`` and N GPUs it compares 1 GPU against N GPUs (one process each) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
SHAPE, LEVELS, OPTIONS = (1, 28, 28), 256, dict(layers=7, hidden=64, head=64)


def worker(args) -> None:
    """One rank (or the only process): time training steps and print {"images_per_s": ...} from rank 0."""
    from pixelrnn import distributed
    from pixelrnn.allocator import tune
    from pixelrnn.config import TrainConfig
    from pixelrnn.distributions import bits_per_dim
    from pixelrnn.precision import autocast
    from pixelrnn.models import build_model
    from pixelrnn.train import make_optimizer

    tune()  # as the pixelrnn command does
    torch.set_num_threads(args.threads)
    with distributed.session(args.device) as device:
        torch.manual_seed(0)
        model = build_model(args.model, SHAPE, LEVELS, **OPTIONS).to(device)
        net = model
        if distributed.active():
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device] if device.type == "cuda" else None)
        optimizer = make_optimizer(TrainConfig(), model.parameters())
        per_rank = args.batch // distributed.world_size()
        x = torch.randint(0, LEVELS, (per_rank, *SHAPE), generator=torch.Generator().manual_seed(1)).to(device)
        times = []
        for k in range(args.warmup + args.steps):
            start = time.perf_counter()
            with autocast(args.precision, device):
                logits = net(x)
            loss = bits_per_dim(logits.float(), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if k >= args.warmup:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        if distributed.is_main():
            print(json.dumps({"images_per_s": args.batch / median}), flush=True)


def measure(model: str, batch: int, processes: int, threads: int, args) -> float | str:
    """Images/s of one configuration, run in a fresh process (or torchrun job)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(threads)}
    flags = ["--worker", "--model", model, "--batch", str(batch), "--threads", str(threads), "--steps",
             str(args.steps), "--warmup", str(args.warmup), "--device", args.device, "--precision", args.precision]
    if processes == 1:
        command = [sys.executable, __file__, *flags]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   "--max_restarts=0", __file__, *flags]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)["images_per_s"]
    return "failed: " + (result.stderr.strip().splitlines() or ["?"])[-1][:80]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for any one measurement")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        layouts = [(1, 1), (gpus, 1)] if gpus > 1 else [(1, 1)]
    else:
        layouts = [(1, 2), (2, 1)]
    names = [f"{p} proc x {t} thr" if args.device == "cpu" else f"{p} GPU" for p, t in layouts]
    print(f"training images/s, {args.precision}, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}, K={LEVELS}, "
          f"{OPTIONS['layers']} layers, h={OPTIONS['hidden']}, head {OPTIONS['head']}; device {args.device}\n")
    print("| model | batch | " + " | ".join(names) + " | ratio |")
    print("|---|---:|" + "---:|" * len(names) + "---:|", flush=True)
    for model in args.models:
        for batch in args.batches:
            speeds = [measure(model, batch, p, t, args) for p, t in layouts]
            cells = [f"{s:.1f}" if isinstance(s, float) else s for s in speeds]
            ratio = f"{speeds[-1] / speeds[0]:.2f}" if all(isinstance(s, float) for s in speeds) else ""
            print(f"| {model} | {batch} | " + " | ".join(cells) + f" | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
