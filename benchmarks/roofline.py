"""The shapes' own limit: how close a training step comes to the time of its matrix products alone.

Training steps of each model (the benchmark configuration of "Pixel Recurrent Neural Networks", van den Oord et al.,
ICML 2016, at CPU size: 1x28x28, K = 256, 7 layers, h = 64, head 64; forward, backward and RMSProp, the training
loop's own ``pixelrnn.train.train_step``) are timed, then run again under a dispatch mode that records every matrix
operation they make (convolutions and their backward, mm, addmm, bmm, baddbmm, ...), with its shapes, strides and
dtypes, and the time it took inside the step. Each distinct operation is then timed alone, on fresh tensors of the
same shapes, strides and dtypes, in the same run, and the times are summed over every call of the step: the
shape-limited time, the fastest the step could run with these products. Step time / shape-limited time is the
overhead of everything else (copies, casts, elementwise work, Python); 1.25 means the products take 80% of the step.

Per model, batch size and precision it prints the step time, the shape-limited time, their ratio, the time the
products took inside the step, the achieved GFLOP/s as a share of this run's 2048^3 matrix-multiply rate in the
machine's best precision (bf16 where the CPU or GPU multiplies in it natively, else fp32), and the five operations
whose time inside the step exceeds their time alone by the most. Precisions: fp32, and bf16 where it is native.
Every time is the fastest of several (``--steps`` steps, and at least five calls alone): another process only ever
adds time, so the fastest timing is the least disturbed one, the same for the step and for its products.

    python benchmarks/roofline.py [--models ...] [--batch-sizes 16 64] [--precisions fp32 bf16] [--threads N]
                                  [--device cpu|cuda] [--quick] [--out roofline.md]

``--quick`` is a smoke run (batch 16 only, one step of each kind, shorter timings alone). The header names the CPU
(or GPU) and the load average: on a busy machine the absolute times mean little, and the ratio shifts too. The
models include ``row_lstm-layers``, the Row LSTM layer by layer rather than on its default wavefront
(``RowLSTM.wavefront``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pixelrnn.allocator import tune
from pixelrnn.benchmark import matmul_gflops
from pixelrnn.config import TrainConfig
from pixelrnn.data import load_dataset
from pixelrnn.devices import cpu_name
from pixelrnn.models import build_model
from pixelrnn.precision import bf16_is_native
from pixelrnn.train import make_optimizer, train_step

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
VARIANTS = ("row_lstm-layers",)  # the Row LSTM layer by layer (``RowLSTM.wavefront = False``), not on a wavefront
OPTIONS = dict(layers=7, hidden=64, head=64)
IMAGE_SHAPE, LEVELS = (1, 28, 28), 256

aten = torch.ops.aten
# The matrix operations as the dispatcher sees them below autograd (linear and matmul arrive as mm/addmm/bmm).
# In-place forms (``out.addmm_(a, b)``, accumulating products) count too.
MATRIX_OPS = {aten.mm, aten.addmm, aten.addmm_, aten.bmm, aten.baddbmm, aten.baddbmm_, aten.addbmm, aten.addbmm_,
              aten.mv, aten.addmv, aten.addmv_, aten.dot, aten.convolution, aten.convolution_backward}


@dataclass(frozen=True)
class Spec:
    """A tensor argument as its shape, strides and dtype: enough to make a fresh one the kernel treats the same."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype

    def __str__(self) -> str:
        dims = "x".join(map(str, self.shape)) or "scalar"
        dense = tuple(math.prod(self.shape[k + 1:]) for k in range(len(self.shape)))
        contiguous = all(s == d for n, s, d in zip(self.shape, self.stride, dense) if n > 1)
        return dims + ("" if contiguous else f"(stride {','.join(map(str, self.stride))})")

    def make(self, device: torch.device) -> torch.Tensor:
        """A tensor of this spec holding random values (strides may overlap, as expanded tensors' do)."""
        if not self.dtype.is_floating_point:
            return torch.zeros(self.shape, dtype=self.dtype, device=device)
        extent = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) if all(self.shape) else 0
        base = torch.randn(max(extent, 1), device=device).to(self.dtype)
        return base.as_strided(self.shape, self.stride)


def spec_of(value):
    """A tensor as its :class:`Spec`, a list as a tuple (so that a call's arguments can key a dict)."""
    if isinstance(value, torch.Tensor):
        return Spec(tuple(value.shape), tuple(value.stride()), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple(spec_of(v) for v in value)
    return value


def made(value, device: torch.device):
    """The arguments of a recorded call with every :class:`Spec` replaced by a fresh tensor."""
    if isinstance(value, Spec):
        return value.make(device)
    if isinstance(value, tuple):
        return [made(v, device) for v in value]
    return value


def flops(op, args) -> int:
    """Multiply-adds x 2 of one matrix operation, from its argument specs."""
    name = op.__name__.removesuffix("_")
    if name in ("mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot"):
        a, b = (args[0], args[1]) if name in ("mm", "bmm", "mv", "dot") else (args[1], args[2])
        return 2 * math.prod(a.shape) * (b.shape[-1] if len(b.shape) >= 2 and name not in ("mv", "addmv") else 1)
    if name == "convolution":
        x, w, groups = args[0], args[1], args[8]
        per_output = math.prod(w.shape[1:])  # in / groups x kernel taps
        out_positions = math.prod(conv_out_size(x.shape[2:], w.shape[2:], args[3], args[4], args[5]))
        return 2 * x.shape[0] * w.shape[0] * out_positions * per_output
    if name == "convolution_backward":  # grad_output, input, weight, ..., output_mask
        grad_out, w, mask = args[0], args[2], args[10]
        forward = 2 * math.prod(grad_out.shape) * math.prod(w.shape[1:])
        return forward * (int(mask[0]) + int(mask[1]))
    return 0


def conv_out_size(size, kernel, stride, padding, dilation):
    return [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(size, kernel, stride, padding, dilation)]


def describe(op, args) -> str:
    tensors = [str(a) for a in args if isinstance(a, Spec)]
    dtypes = sorted({str(a.dtype).removeprefix("torch.") for a in args if isinstance(a, Spec)})
    return f"{op.__name__}({', '.join(tensors)}) {'/'.join(dtypes)}"


class RecordMatrixOps(TorchDispatchMode):
    """Record each matrix operation of the block with its argument specs and its own time (synchronised on CUDA)."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.calls: list[tuple[object, tuple, tuple, float]] = []  # (op, argument specs, keyword specs, seconds)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket not in MATRIX_OPS:
            return func(*args, **kwargs)
        synchronise(self.device)
        start = time.perf_counter()
        out = func(*args, **kwargs)
        synchronise(self.device)
        seconds = time.perf_counter() - start
        self.calls.append((func, spec_of(args), spec_of(sorted(kwargs.items())), seconds))
        return out


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_alone(op, args: tuple, kwargs: tuple, device: torch.device, budget: float) -> float:
    """The fastest of several calls of ``op`` on fresh tensors of the recorded specs (after two untimed calls)."""
    positional, keywords = made(args, device), {key: made(value, device) for key, value in kwargs}
    times, began = [], time.perf_counter()
    with torch.no_grad():
        for k in range(2 + 50):
            synchronise(device)
            start = time.perf_counter()
            op(*positional, **keywords)
            synchronise(device)
            if k >= 2:
                times.append(time.perf_counter() - start)
                if len(times) >= 5 and time.perf_counter() - began > budget:
                    break
    return min(times)


@dataclass
class Roofline:
    step: float  # median step time, s
    limit: float  # shape-limited time: every product alone, summed over the step's calls
    inside: float  # the products' time inside the recorded step
    flops: int  # of the step's products
    calls: int
    shapes: int
    gaps: list[tuple[float, float, int, str]]  # (inside s, alone s, calls, description), largest gap first


def roofline(model, batches: list[torch.Tensor], precision: str, steps: int, budget: float) -> Roofline:
    """Time ``steps`` training steps and record as many more (each product's time inside the step is its fastest
    over them), then time each distinct product alone."""
    device = batches[0].device
    optimizer = make_optimizer(TrainConfig(lr=1e-4), model.parameters())
    step = math.inf
    for k in range(2 + steps):  # two untimed steps: the allocator, the kernels' first calls, the optimizer's state
        synchronise(device)
        start = time.perf_counter()
        train_step(model, optimizer, [(batches[k % len(batches)], None)], precision, TrainConfig.grad_clip)
        synchronise(device)
        if k >= 2:
            step = min(step, time.perf_counter() - start)
    recorded = []
    for k in range(steps):  # the same step again and again: the same products in the same order
        with RecordMatrixOps(device) as recorder:
            train_step(model, optimizer, [(batches[k % len(batches)], None)], precision, TrainConfig.grad_clip)
        recorded.append(recorder.calls)
    by_kind: dict[tuple, list[float]] = defaultdict(list)
    for calls in zip(*recorded):
        func, args, kwargs, _ = calls[0]
        by_kind[(func, args, kwargs)].append(min(seconds for *_, seconds in calls))
    rows, limit, total_flops = [], 0.0, 0
    for (func, args, kwargs), inside in by_kind.items():
        alone = time_alone(func, args, kwargs, device, budget) * len(inside)
        limit += alone
        total_flops += flops(func.overloadpacket, args) * len(inside)
        rows.append((sum(inside), alone, len(inside), describe(func.overloadpacket, args)))
    rows.sort(key=lambda r: r[0] - r[1], reverse=True)
    return Roofline(step, limit, sum(r[0] for r in rows), total_flops, len(recorded[0]), len(by_kind), rows[:5])


def make_batches(data_name: str, batch_size: int, device: torch.device, count: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if data_name == "random":
        return [torch.randint(0, LEVELS, (batch_size, *IMAGE_SHAPE), generator=gen).to(device) for _ in range(count)]
    data = load_dataset(data_name, "train")
    return [data.images[torch.randint(len(data), (batch_size,), generator=gen)].long().to(device)
            for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS + VARIANTS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="bf16 is measured only where it is native")
    parser.add_argument("--steps", type=int, default=3, help="timed and recorded steps per configuration (fastest)")
    parser.add_argument("--budget", type=float, default=0.05, help="seconds to time each distinct product alone")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's setting)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="fashion-mnist", help="a data set name, or 'random' for random images")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 16, one step, short timings")
    parser.add_argument("--out", help="also write the report (markdown) here")
    args = parser.parse_args()
    if args.quick:
        args.batch_sizes, args.steps, args.budget = [16], 1, 0.01
    if args.threads:
        torch.set_num_threads(args.threads)
    tune()  # as the pixelrnn command does: fewer page faults in training
    device = torch.device(args.device)

    native = bf16_is_native(device)
    best = "bf16" if native else "fp32"
    precisions = [p for p in dict.fromkeys(args.precisions) if p == "fp32" or native]
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    rate = matmul_gflops(best, device=device)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [f"{what}, {torch.get_num_threads()} thread(s), load average {load} (1, 5, 15 min), "
             f"torch {torch.__version__}",
             f"best precision: {best} ({'native' if native else 'bf16 emulated here'}); its 2048^3 matmul rate "
             f"{rate:.0f} GFLOP/s, measured in this run", "",
             "| model | batch | precision | step s | shape-limited s | ratio | products in step s | GFLOP/s | "
             f"share of {best} rate |", "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    details = []
    for name in args.models:
        for batch_size in args.batch_sizes:
            batches = make_batches(args.data, batch_size, device)
            for precision in precisions:
                torch.manual_seed(0)
                family, _, variant = name.partition("-")
                model = build_model(family, IMAGE_SHAPE, LEVELS, **OPTIONS).to(device)
                if variant == "layers":
                    model.wavefront = False
                r = roofline(model, batches, precision, args.steps, args.budget)
                gflops = r.flops / r.step / 1e9
                row = (f"| {name} | {batch_size} | {precision} | {r.step:.3f} | {r.limit:.3f} | "
                       f"{r.step / r.limit:.2f} | {r.inside:.3f} | {gflops:.1f} | {100 * gflops / rate:.0f}% |")
                lines.append(row)
                print(row, flush=True)
                details += ["", f"{name}, batch {batch_size}, {precision}: {r.calls} products of {r.shapes} kinds, "
                            f"{r.flops / 1e9:.2f} GFLOP; the five largest gaps (inside the step - alone):", "",
                            "| product | calls | inside s | alone s | gap s |", "|---|---|---|---|---|"]
                details += [f"| `{d}` | {n} | {inside:.4f} | {alone:.4f} | {inside - alone:.4f} |"
                            for inside, alone, n, d in r.gaps]
    print("\n".join(details), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines + details) + "\n")


if __name__ == "__main__":
    main()
