"""Devices: which one to run on, how batches get there, and which numerics each kind of work may use.

A command takes ``--device auto|cpu|cuda|cuda:N``; ``auto`` is CUDA when it is available. Checkpoints are
device-free: they are always read onto the CPU and then moved (see :mod:`pixelrnn.checkpoint`).

Numerics: training steps may use TF32 matrix products on CUDA (faster, and the optimizer does not notice), but
every likelihood that is reported, validation inside training included, runs with TF32 off, so a figure does not
depend on the GPU generation. Precisions and autocast live in :mod:`pixelrnn.precision` (fp16 is CUDA-only).

Random draws use a generator on the model's device, so the same seed need not give the same images on a CPU and on
a GPU.
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import ConfigError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch.device for a ``--device`` value.

    Under torchrun, ``cuda`` (and ``auto`` on a machine with GPUs) means this process's own GPU, ``cuda:LOCAL_RANK``.

    Raises:
        ConfigError: for an unknown name, or CUDA asked for where there is none.
    """
    name = "auto" if name is None else str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: this machine has no CUDA GPU that torch can use; "
                              f"use --device cpu (or auto)")
        if name == "cuda":
            index = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
        else:
            try:
                index = int(name[5:])
            except ValueError:
                raise ConfigError(f"--device {name}: expected {DEVICE_CHOICES}") from None
        if not 0 <= index < torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                              f"numbered 0 to {torch.cuda.device_count() - 1}")
        return torch.device("cuda", index)
    raise ConfigError(f"--device {name}: expected {DEVICE_CHOICES}")


def eval_batch_size(device: torch.device) -> int:
    """Images per forward pass when scoring on ``device``, where the caller gives no batch size.

    Only speed depends on it. A GPU wants big batches; on a CPU the activations of a big batch spill out of the
    caches (a 7-layer Row LSTM at h = 64 holds 205 MB of gate maps per layer at 256 images, 13 MB at 16), and
    batch 16 scores 1.3 to 2.8 times as many images per second as 256 on one core, the more for the PixelCNN
    (``benchmarks/eval_speed.py``).
    """
    return 256 if device.type == "cuda" else 16


def cpu_name() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe(device: torch.device) -> str:
    """The device in a few words, for the first lines of a run: ``cpu (Intel Xeon ..., 2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({cpu_name()}, {threads} thread{'s' if threads != 1 else ''})"


def cpu_only(name: str | None, command: str) -> torch.device:
    """The CPU, for commands whose results must not depend on the device (the codec); refuses CUDA with why."""
    if name in (None, "auto", "cpu"):
        return torch.device("cpu")
    if name == "cuda" or str(name).startswith("cuda:"):
        raise ConfigError(f"{command} runs on the CPU only: its probabilities must be bit-identical wherever the file "
                          f"is decoded, and GPU arithmetic is not; drop --device {name}")
    raise ConfigError(f"--device {name}: expected {DEVICE_CHOICES}")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device``: through pinned memory and without blocking when the device is a GPU."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


# A loop of small dependent steps (generation's walk, the recurrent scans of training) runs on one thread where the
# largest product of a step is below this many FLOPs, about a millisecond on one core: split over two threads such a
# product gains little on a quiet machine, and each waits for the other thread's time slice whenever another process
# is busy (training steps 25 times slower, generation 100 times, measured).
SMALL_STEP_FLOPS = 2**27


def threads_for_steps(step_flops: float) -> int:
    """Intra-op threads for a loop of dependent steps whose largest product takes ``step_flops``: 1 below
    ``SMALL_STEP_FLOPS``, the caller's setting above."""
    return 1 if step_flops < SMALL_STEP_FLOPS else torch.get_num_threads()


@contextmanager
def num_threads(threads: int):
    """Run the block with ``threads`` intra-op threads, restoring the caller's setting afterwards (also on error)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def eval_mode(module: torch.nn.Module):
    """Run the block with ``module`` in eval mode, then put it back in the mode it was in (also on error)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextmanager
def tf32(enabled: bool):
    """Allow (or forbid) TF32 matrix products and convolutions on CUDA inside the block; restores the old setting."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A random generator on ``device`` (draws on a GPU need a GPU generator), seeded."""
    return torch.Generator(device=device).manual_seed(seed)
