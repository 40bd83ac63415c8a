"""Training throughput: images/s of full training steps (forward, backward, optimizer), median after warm-up.

The share of the machine's limit: images/s x a fixed amount of work per image, divided by the bf16
2048^3 matrix-multiply rate measured in the same run. The work per image is fixed at the count of the benchmark
configuration (1x28x28, K = 256, 7 layers, h = 64, head 64; forward and backward) when the figure was defined, so a
change can only raise the share by going faster, never by counting more. Learned initial states and the PixelCNN's
skip connections have since changed the real count slightly (``training_flops`` gives it); the fixed figures stay.
"""

from __future__ import annotations

import statistics
import time

import torch
from tqdm.auto import tqdm

from .budget import check_training_fits
from .config import TrainConfig, check_kernels
from .models import build_model
from .distributions import bits_per_dim
from .precision import resolve_precision
from .train import make_optimizer, train_step


# GFLOP per image of one forward and backward pass on the benchmark configuration, fixed (see above).
WORK_PER_IMAGE_GFLOP = {"pixelcnn": 1.475, "row_lstm": 4.71, "diagonal_bilstm": 5.25}


def share_of_matmul(model_name: str, images_per_s: float, matmul_bf16_gflops: float) -> float:
    """The fraction of the bf16 matmul rate that ``images_per_s`` reaches, at the fixed work per image."""
    return images_per_s * WORK_PER_IMAGE_GFLOP[model_name] / matmul_bf16_gflops


def train_speed(model, batches: list[torch.Tensor], precision: str = "fp32", warmup: int = 3, steps: int = 10,
                grad_clip: float = TrainConfig.grad_clip, progress: bool = False) -> dict:
    """Time training steps of ``model`` on the given batches (cycled): the training loop's own
    :func:`~pixelrnn.train.train_step`, with its RMSProp and gradient clipping. ``precision`` may be "auto" (bf16
    where the batches' device runs it natively, else fp32).

    A slow configuration (a Diagonal BiLSTM at the paper's size takes seconds a step on a CPU) shows a progress
    bar with the time per step and what is left, when ``progress`` is set and there is a terminal.

    Returns:
        {"images_per_s": batch size / median step time, "step_seconds": median step time}.
    """
    precision = resolve_precision(precision, batches[0].device)
    optimizer = make_optimizer(TrainConfig(lr=1e-4), model.parameters())
    scaler = torch.amp.GradScaler(batches[0].device.type, enabled=precision == "fp16")
    model.train()
    times = []
    bar = tqdm(range(warmup + steps), desc=f"{getattr(model, 'name', 'model')} {precision}", unit="step",
               leave=False, disable=None if progress else True)
    for k in bar:
        x = batches[k % len(batches)]
        start = time.perf_counter()
        train_step(model, optimizer, [(x, None)], precision, grad_clip, scaler)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)  # GPU work is asynchronous: time it to the end
        if k >= warmup:
            times.append(time.perf_counter() - start)
            bar.set_postfix(s_step=f"{statistics.median(times):.3f}")
    median = statistics.median(times)
    return {"images_per_s": len(batches[0]) / median, "step_seconds": median}


def bench(model_name: str, data, options: dict, precisions: list[str], batch_size: int = 16,
          device: torch.device | str = "cpu", warmup: int = 3, steps: int = 10, progress: bool = False):
    """Training speed of one model configuration in each precision, on random batches of ``data``'s images.

    Args:
        model_name: the model family.
        data: an :class:`~pixelrnn.data.ImageData` whose images (and shape and levels) to use.
        options: the family's options (``layers``, ``hidden``, ...).
        precisions: the precisions to measure, in order ("auto" is measured as what it resolves to on ``device``).
        batch_size, device, warmup, steps, progress: as :func:`train_speed`.

    Yields:
        (precision, :func:`train_speed`'s dict), one per precision, "auto" resolved: the same seeded model and
        batches for each.
    """
    check_kernels(options, data.image_shape)
    check_training_fits({"model": model_name, "image_shape": data.image_shape, "levels": data.levels, **options},
                        batch_size, device)
    gen = torch.Generator().manual_seed(0)
    for precision in (resolve_precision(p, device) for p in precisions):
        torch.manual_seed(0)
        model = build_model(model_name, data.image_shape, data.levels, **options).to(device)
        batches = [data.images[torch.randint(len(data), (batch_size,), generator=gen)].long().to(device)
                   for _ in range(4)]
        yield precision, train_speed(model, batches, precision, warmup=warmup, steps=steps, progress=progress)


def training_flops(model, x: torch.Tensor) -> int:
    """Floating-point operations of one forward and backward pass, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        logits = model(x)
        bits_per_dim(logits.float(), x).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_gflops(precision: str, size: int = 2048, repeats: int = 10, device: torch.device | str = "cpu") -> float:
    """The machine's dense matrix-multiply rate in GFLOP/s for a precision, to put model figures in context."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    device = torch.device(device)
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    a @ b
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # GPU work is asynchronous: time it to the end
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9
