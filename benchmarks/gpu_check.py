"""One prepared check for a CUDA machine: speed, efficiency, sampling time, the CUDA tests, DDP scaling.

GPU time is scarce, so this finishes within a deadline (8 minutes by default) and writes each table row as soon
as it is measured, to stdout and to ``--out`` (markdown). Sections, in order:

1. the GPU's dense bf16 and fp32 matmul rates (the yardstick);
2. per model, at the paper's CIFAR-10 shape (3x32x32, K = 256) with the paper's size and with a small size:
   training images/s in bf16 and fp32 at batch 16, achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode)
   and that as a fraction of the measured bf16 matmul rate;
3. the roofline of ``benchmarks/roofline.py`` on the GPU (batch 16 and 64, fp32 and bf16, at its 1x28x28
   benchmark size): each training step's time against the sum of its matrix products timed alone;
4. time to sample 16 images: the fast step-wise path in full, the naive path on 2 rows, scaled to the image;
5. the test suite's CUDA-marked tests (pytest -m cuda);
6. DDP scaling with benchmarks/scaling.py when there is more than one GPU.

    python benchmarks/gpu_check.py                       # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --dry-run  # the same code paths, tiny and quick, on a CPU

On a machine without CUDA (and without --device cpu) it prints one line and exits with status 0.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pixelrnn.benchmark import training_flops  # noqa: E402
from pixelrnn.config import TrainConfig  # noqa: E402
from pixelrnn.distributions import bits_per_dim  # noqa: E402
from pixelrnn.precision import autocast  # noqa: E402
from pixelrnn.generate import complete  # noqa: E402
from pixelrnn.models import build_model  # noqa: E402
from pixelrnn.train import make_optimizer  # noqa: E402

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
PAPER = {"pixelcnn": dict(layers=15, hidden=128, head=1024), "row_lstm": dict(layers=12, hidden=128, head=1024),
         "diagonal_bilstm": dict(layers=12, hidden=128, head=1024)}  # the cifar10-* presets
SMALL = dict(layers=4, hidden=32, head=64)


class Report:
    """Writes lines to stdout and to the markdown file as they come, so a cut-off run still leaves its table."""

    def __init__(self, path: Path):
        self.file = open(path, "w")

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` after warm-up."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(device, dtype, size: int, repeats: int) -> float:
    """Dense matmul GFLOP/s for ``dtype`` (TF32 off for float32)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.backends.cuda.matmul.allow_tf32 = False
    return 2 * size**3 / timed(lambda: a @ b, device, repeats) / 1e9


def train_rate(model, x, precision, device, steps: int) -> float:
    """Training images/s (forward, loss, backward, RMSProp) at the batch of ``x``."""
    optimizer = make_optimizer(TrainConfig(lr=1e-4), model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    model.train()

    def step():
        with autocast(precision, device):
            logits = model(x)
        loss = bits_per_dim(logits.float(), x)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return len(x) / timed(step, device, steps, warmup=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes and few steps: check the code paths")
    parser.add_argument("--deadline", type=float, default=7.5 * 60, help="seconds; sections past it are skipped")
    parser.add_argument("--out", default="gpu_check.md")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing to measure (use --device cpu --dry-run to check the "
              "script itself)")
        return 0
    device = torch.device(args.device)
    start = time.perf_counter()

    def left() -> float:
        return args.deadline - (time.perf_counter() - start)

    report = Report(Path(args.out))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    dry = args.dry_run
    shape = (3, 8, 8) if dry else (3, 32, 32)
    configs = {"small": lambda m: SMALL} if dry else {"paper": PAPER.get, "small": lambda m: SMALL}
    batch, steps = (4, 2) if dry else (16, 5)
    report(f"# GPU check: {name}, torch {torch.__version__}{' (dry run)' if dry else ''}")
    report()
    size = 256 if dry else 8192
    bf16_rate = matmul_rate(device, torch.bfloat16, size, 3 if dry else 20)
    fp32_rate = matmul_rate(device, torch.float32, size, 3 if dry else 10)
    report(f"dense matmul {size}x{size}: bf16 {bf16_rate:,.0f} GFLOP/s, fp32 (no TF32) {fp32_rate:,.0f} GFLOP/s")
    report()

    report(f"## Training, {shape[0]}x{shape[1]}x{shape[2]}, K=256, batch {batch}")
    report()
    report("| model | size | precision | images/s | GFLOP/s | of bf16 peak |")
    report("|---|---|---|---:|---:|---:|")
    torch.backends.cuda.matmul.allow_tf32 = True  # as in training steps
    torch.backends.cudnn.allow_tf32 = True
    for model_name in MODELS:
        for size_name, options in configs.items():
            for precision in ("bf16", "fp32"):
                if left() < 60:
                    report(f"| {model_name} | {size_name} | {precision} | skipped (deadline) | | |")
                    continue
                torch.manual_seed(0)
                model = build_model(model_name, shape, 256, **options(model_name)).to(device)
                x = torch.randint(0, 256, (batch, *shape), device=device)
                with autocast(precision, device):
                    flops = training_flops(model, x)
                rate = train_rate(model, x, precision, device, steps)
                gflops = flops * rate / batch / 1e9
                report(f"| {model_name} | {size_name} | {precision} | {rate:,.1f} | {gflops:,.0f} | "
                       f"{gflops / bf16_rate:.1%} |")
                del model
    report()

    report("## Roofline: each training step against its products alone (benchmarks/roofline.py)")
    report()
    if left() < 150:
        report("skipped (deadline)")
    else:
        sizes = ["--quick", "--models", "pixelcnn"] if dry else ["--batch-sizes", "16", "64", "--steps", "3"]
        command = [sys.executable, str(ROOT / "benchmarks" / "roofline.py"), "--device", str(device),
                   "--data", "random", *sizes]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=max(30, left() / 3))
            report(result.stdout.strip() if result.returncode == 0 else
                   f"roofline.py failed (status {result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
        except subprocess.TimeoutExpired:
            report("the roofline did not finish in its share of the time left")
    report()

    report(f"## Sampling 16 images, {shape[0]}x{shape[1]}x{shape[2]}, small size, fp32")
    report()
    report("| model | fast (s) | naive, 2 rows (s) | naive, scaled to the image (s) |")
    report("|---|---:|---:|---:|")
    for model_name in MODELS:
        if left() < 90:
            report(f"| {model_name} | skipped (deadline) | | |")
            continue
        torch.manual_seed(0)
        model = build_model(model_name, shape, 256, **SMALL).to(device).eval()
        gen = torch.Generator(device=device).manual_seed(0)
        fast = timed(lambda: model.sample(16, generator=gen), device, 1, warmup=0)
        known = torch.ones(shape, dtype=torch.bool)
        known[:, :2] = False  # the naive path samples the first two rows only
        x = torch.zeros(16, *shape, dtype=torch.long, device=device)
        naive = timed(lambda: complete(model, x, known, generator=gen, method="naive"), device, 1, warmup=0)
        report(f"| {model_name} | {fast:.2f} | {naive:.2f} | {naive * shape[1] / 2:.1f} |")
    report()

    report("## CUDA-marked tests")
    report()
    if device.type != "cuda":
        report("skipped: not on a GPU")
    elif left() < 120:
        report("skipped (deadline)")
    else:
        command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
        try:
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=left() - 60)
            report("```\n" + "\n".join(result.stdout.strip().splitlines()[-15:]) + "\n```")
        except subprocess.TimeoutExpired:
            report("the CUDA tests did not finish before the deadline")
    report()

    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    report("## DDP scaling")
    report()
    if gpus < 2:
        report(f"skipped: {gpus} GPU(s)")
    elif left() < 120:
        report("skipped (deadline)")
    else:
        command = [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--device", "cuda", "--precision", "bf16",
                   "--batches", "64", "--steps", "5", "--timeout", str(max(30, (left() - 30) / 3))]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=left() - 20)
            report(result.stdout.strip())
        except subprocess.TimeoutExpired:
            report("DDP scaling did not finish before the deadline")
    report()
    report(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
