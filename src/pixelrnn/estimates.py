"""How long each preset takes to train: measured on this machine, and estimated for a GPU.

The paper's models ("Pixel Recurrent Neural Networks", van den Oord et al., ICML 2016, section 5) train for days on
GPUs; the CPU-sized presets in minutes to an hour. ``pixelrnn presets`` says which is which on the machine at hand,
in about ten seconds, without training any preset at its own size:

- the work of one training step of a preset, in FLOPs (forward and backward, ``torch.utils.flop_counter``), is
  counted on a 4 x 4 crop of its images and scaled by the pixels: every layer of these models does the same work
  at each pixel, so the count grows with H x W (the Diagonal BiLSTM's skewed map nearly so); what a step does once
  whatever its size (the PixelCNN composes its skip weights) is counted apart, at batch 1 and 2, and not scaled;
- this machine's rate for each model family is measured on one training step of the family at the CPU size
  (7 layers, h = 64, head 64, batch 4, 28 x 28) on one thread, in the precision ``auto`` picks here: one core is what
  a run gets when anything else is busy (two threads then wait on each other's time slices), and the figure stays
  the same whatever else runs on the other cores;
- a GPU's time is the same work at an assumed rate (:data:`GPU_TFLOPS`), and at least :data:`GPU_MIN_STEP_SECONDS`
  a step, marked as an estimate until measured.

The figures count training steps only: validation passes come on top (the shipped fashion models' runs took 20 to
25% longer a step than the one-core figure). Models larger than the measured one use a machine better, so for the
paper's sizes the one-core figure leans high.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import SPECS
from .distributions import bits_per_dim
from .devices import num_threads
from .models import build_model
from .precision import resolve_precision
from .presets import PRESETS, cpu_sized
from .train import make_optimizer, train_step

# An assumed achieved rate of a recent data-centre GPU in bf16 on these models (convolutions and small recurrent
# products reach a fraction of the peak); the GPU column is an estimate from it, not a measurement.
GPU_TFLOPS = 50.0
# A small model's GPU step costs its kernel launches more than its FLOPs (the recurrent scans launch several kernels
# per row and layer); no step is taken to be faster than this.
GPU_MIN_STEP_SECONDS = 0.01
CROP = 4
# Official training images of the sets that carve their validation split from them (the spec knows the rest).
OFFICIAL_TRAIN = {"mnist": 60_000, "fashion-mnist": 60_000, "binarized-mnist": 50_000, "cifar10": 50_000,
                  "imagenet32": 1_281_149, "imagenet64": 1_281_149}


def train_images(data: str) -> int | None:
    """The number of training images of a named set (after its validation split), without reading it."""
    spec = SPECS.get(data)
    if spec is None:
        return None
    if spec.pool is not None:
        return spec.pool["train"]
    official = OFFICIAL_TRAIN.get(data)
    if official is None:
        return None
    return official - (min(spec.valid_size, official // 10) if spec.valid_size is not None else 0)


def step_flops(model: str, options: dict, image_shape: tuple[int, int, int], levels: int, batch: int) -> float:
    """FLOPs of one training step (forward and backward) at batch ``batch``, counted on a crop and scaled."""
    channels, height, width = image_shape
    scale = min(height, width) // CROP if min(height, width) >= CROP else 1
    options = dict(options)
    if "small" in options and scale > 1:  # the multi-scale levels shrink with the image
        sizes = [options["small"]] if isinstance(options["small"], int) else list(options["small"])
        if all(size % scale == 0 for size in sizes):
            options["small"] = [size // scale for size in sizes]
        else:
            scale = 1
    shape = (channels, height // scale, width // scale)
    torch.manual_seed(0)
    net = build_model(model, shape, levels, **options)

    def counted(images: int) -> int:
        x = torch.randint(0, levels, (images, *shape))
        with FlopCounterMode(display=False) as counter:
            bits_per_dim(net(x).float(), x).backward()
        return counter.get_total_flops()

    # What grows with the batch grows with the pixels; the rest is done once a step (the PixelCNN's composed skip
    # weights), and is not scaled.
    one, two = counted(1), counted(2)
    per_image = two - one
    return (one - per_image) + per_image * (height * width) / (shape[1] * shape[2]) * batch


def family_rate(model: str, device: torch.device, steps: int = 1, batch: int = 4) -> float:
    """This machine's FLOP/s on training steps of ``model`` at the CPU size, on one CPU thread, in the precision
    auto picks."""
    options = {**cpu_sized((1, 28, 28)), **({"base": "pixelcnn", "small": 14} if model == "multiscale" else {})}
    torch.manual_seed(0)
    net = build_model(model, (1, 28, 28), 256, **options).to(device)
    x = torch.randint(0, 256, (batch, 1, 28, 28), device=device)
    precision = resolve_precision("auto", device)
    optimizer = make_optimizer(TrainConfig(), net.parameters())
    times = []
    with num_threads(1 if device.type == "cpu" else torch.get_num_threads()):
        for k in range(steps + 1):  # the first step pays one-off costs
            start = time.perf_counter()
            train_step(net, optimizer, [(x, None)], precision)
            if k:
                times.append(time.perf_counter() - start)
    flops = step_flops(model, options, (1, 28, 28), 256, batch)
    return flops / statistics.median(times)


def preset_estimates(device: torch.device | str = "cpu", progress: bool = False) -> dict[str, dict]:
    """For every preset: its steps, FLOPs per step, and the hours it takes on one core here and (estimated) on a GPU.

    Returns:
        {name: {"steps", "step_flops", "here_hours", "gpu_hours"}}; steps and hours are None where the size of the
        preset's data set is not known without reading it.
    """
    device = torch.device(device)
    families = sorted({p.values["model"] for p in PRESETS.values()})
    bar = tqdm(total=len(families) + len(PRESETS), desc="timing presets", unit="model", leave=False,
               disable=None if progress else True)
    rates = {}
    for family in families:
        rates[family] = family_rate(family, device)
        bar.update(1)
    out = {}
    for name, p in PRESETS.items():
        config = TrainConfig.from_dict(p.values)
        spec = SPECS[config.data]
        flops = step_flops(config.model, config.model_options, spec.shape, spec.levels, config.batch_size)
        images = train_images(config.data)
        steps = config.steps if config.steps is not None else (
            None if images is None else config.total_steps(images))
        here = None if steps is None else steps * flops / rates[config.model] / 3600
        gpu = None if steps is None else steps * max(flops / (GPU_TFLOPS * 1e12), GPU_MIN_STEP_SECONDS) / 3600
        out[name] = {"steps": steps, "step_flops": flops, "here_hours": here, "gpu_hours": gpu}
        bar.update(1)
    bar.close()
    return out


def duration(hours: float | None) -> str:
    """Hours as a person reads them: "40 s", "12 min", "3.5 h", "9 days"."""
    if hours is None or not math.isfinite(hours):
        return "?"
    seconds = hours * 3600
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"
