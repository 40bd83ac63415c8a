"""Training throughput of the three model families on real Fashion-MNIST batches, and the PixelCNN against a plain one.

For each model (1x28x28, K = 256, 7 layers, h = 64, head 64), batch size and precision: training images/s (the median
full step after warm-up: forward, backward, RMSProp) and the achieved GFLOP/s (FLOPs of one forward and backward
pass, counted by torch.utils.flop_counter, over the median step time), next to this machine's dense 2048^3 matmul
GFLOP/s, measured in the same run. The last column is the share of the machine's limit: images/s x the fixed work per
image (1.475 GFLOP PixelCNN, 4.71 Row LSTM, 5.25 Diagonal BiLSTM; ``pixelrnn.benchmark.WORK_PER_IMAGE_GFLOP``) over
the matmul rate of the machine's best native precision: bf16 where the CPU multiplies in it (AVX-512 bf16 or AMX),
fp32 where bf16 is emulated (there an emulated bf16 product is 10-150x slower, and a share of it means nothing).
The header names the CPU, that precision and the load average: on a busy machine the absolute figures mean little.

Beside our PixelCNN, in the same run and with the same weights, a plain PixelCNN of the same sizes written the way
public implementations write it (:class:`PlainPixelCNN`): ``nn.Conv2d`` layers with the full k x k kernel whose weight
is multiplied by its mask in every call, padded all round, residual blocks of 1x1, 3x3 and 1x1 convolutions, the same
skips and head. The two are stepped in turn, one step each per round, so that a change of load hits both alike;
the ratio ours / plain of their images/s is printed per batch size and precision. The plain one runs twice: on the
batches as this project's data sets give them (a one-channel batch of them reads as channels-last, and so the plain
network's convolutions run channels-last), and on the same batches with NCHW strides, as a torchvision loader gives
them to public code (:class:`NCHWBatches`).

The Row LSTM runs its layers on a wavefront (``RowLSTM.wavefront``: all layers along one anti-diagonal of (layer,
row) per step); it is timed side by side with the same model layer by layer, and their ratio printed.

Precisions: fp32 and bf16 where it is native (``--precisions`` may ask for an emulated bf16 by name).

    python benchmarks/train_speed.py [--models ...] [--batch-sizes 16 64] [--steps 6] [--threads N] [--out table.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn.allocator import tune
from pixelrnn.benchmark import matmul_gflops, share_of_matmul, training_flops
from pixelrnn.config import TrainConfig
from pixelrnn.data import load_dataset
from pixelrnn.devices import cpu_name
from pixelrnn.masks import ColourGroups, conv_mask
from pixelrnn.models import build_model
from pixelrnn.precision import bf16_is_native
from pixelrnn.train import make_optimizer, train_step

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
OPTIONS = dict(layers=7, hidden=64, head=64)


class PlainMaskedConv2d(nn.Conv2d):
    """A masked convolution as public PixelCNN code writes it: the whole k x k kernel, times its mask in every call."""

    def __init__(self, in_features: int, out_features: int, kernel: int, mask_type: str, colours: ColourGroups):
        super().__init__(in_features, out_features, kernel, padding=kernel // 2)
        self.register_buffer("mask", conv_mask(out_features, in_features, (kernel, kernel), mask_type, colours),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PlainBlock(nn.Module):
    def __init__(self, hidden: int, kernel: int, colours: ColourGroups):
        super().__init__()
        self.reduce = PlainMaskedConv2d(2 * hidden, hidden, 1, "B", colours)
        self.conv = PlainMaskedConv2d(hidden, hidden, kernel, "B", colours)
        self.expand = PlainMaskedConv2d(hidden, 2 * hidden, 1, "B", colours)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(torch.relu(self.conv(torch.relu(self.reduce(torch.relu(x))))))


class PlainPixelCNN(nn.Module):
    """The network of ``pixelrnn``'s PixelCNN (same layers, sizes and parameter names), written plainly.

    Only speed differs: the same state dict loads into both, and ``main`` checks that they give the same logits.
    """

    def __init__(self, model):
        super().__init__()
        s = model.settings
        colours, h = s.colours, s.hidden
        self.levels, self.channels = s.levels, s.image_shape[0]
        self.input = PlainMaskedConv2d(colours.count, 2 * h, s.first_kernel, "A", colours)
        self.blocks = nn.ModuleList(PlainBlock(h, s.kernel, colours) for _ in range(s.layers))
        self.skips = nn.ModuleList(PlainMaskedConv2d(2 * h, 2 * h, 1, "B", colours) for _ in range(s.layers))
        self.head = nn.Module()
        self.head.hidden = PlainMaskedConv2d(2 * h, s.head, 1, "B", colours)
        self.head.logits = PlainMaskedConv2d(s.head, colours.count * s.levels, 1, "B", colours)
        if not (s.skip and s.residual and s.colours.layout == "contiguous" and not s.num_classes):
            raise ValueError("the plain PixelCNN is the default one: skips, residuals, contiguous colour groups")

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        stream = self.input(x.float() * (2.0 / (self.levels - 1)) - 1.0)
        skip_sum = 0
        for block, skip in zip(self.blocks, self.skips):
            out = block(stream)
            stream = stream + out
            skip_sum = skip_sum + skip(out)
        logits = self.head.logits(torch.relu(self.head.hidden(torch.relu(skip_sum))))
        b, _, height, width = logits.shape
        return logits.view(b, self.channels, self.levels, height, width).transpose(1, 2)  # (B, K, C, H, W)


class NCHWBatches(nn.Module):
    """The plain PixelCNN fed its batches with NCHW strides, as a torchvision loader gives them.

    This project's data sets hold their images pixel by pixel, (N, H, W, C) in memory, and a one-channel batch of them
    reads as channels-last: on it the plain network's convolutions run channels-last too, by that accident. Fed NCHW
    strides, it runs its convolutions in that layout, as public code fed by its own loaders does. Ours turns any
    batch channels-last itself.
    """

    def __init__(self, plain: PlainPixelCNN):
        super().__init__()
        self.plain = plain

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.plain(torch.empty(x.shape, dtype=x.dtype, device=x.device).copy_(x), y)


def side_by_side(models: dict[str, nn.Module], batches: list[torch.Tensor], precision: str, warmup: int,
                 steps: int) -> dict[str, float]:
    """Median training step seconds of each model, stepping them in turn (one step each per round)."""
    optimizers = {name: make_optimizer(TrainConfig(lr=1e-4), m.parameters()) for name, m in models.items()}
    times = {name: [] for name in models}
    for k in range(warmup + steps):
        x = batches[k % len(batches)]
        for name, model in models.items():
            model.train()
            start = time.perf_counter()
            train_step(model, optimizers[name], [(x, None)], precision, TrainConfig.grad_clip)
            if k >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def contenders(name: str, model) -> dict[str, nn.Module]:
    """The models to time side by side with ``model``: the plain PixelCNN, or the Row LSTM's other scan."""
    if name == "pixelcnn":
        plain = PlainPixelCNN(model)
        plain.load_state_dict(model.state_dict())
        x = torch.randint(0, model.levels, (2, *model.image_shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if not torch.allclose(plain(x), model(x), atol=1e-4):
                raise AssertionError("the plain PixelCNN does not compute the same network")
        nchw = NCHWBatches(PlainPixelCNN(model))
        nchw.plain.load_state_dict(model.state_dict())
        return {"plain": plain, "plain on NCHW batches": nchw}
    if name == "row_lstm":
        other = build_model(name, model.image_shape, model.levels, **OPTIONS)
        other.load_state_dict(model.state_dict())
        other.wavefront = not model.wavefront
        return {"wavefront" if other.wavefront else "layer by layer": other}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                        help="default: fp32, and bf16 where the CPU runs it natively")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's setting)")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune()  # as the pixelrnn command does: fewer page faults in training

    native = bf16_is_native("cpu")
    best = "bf16" if native else "fp32"
    precisions = args.precisions or (["fp32", "bf16"] if native else ["fp32"])
    data = load_dataset(args.data, "train")
    gen = torch.Generator().manual_seed(0)
    peak = {p: matmul_gflops(p) for p in dict.fromkeys([*precisions, best])}
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [f"machine: {cpu_name()}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load average {load} "
             f"(1, 5, 15 min), torch {torch.__version__}",
             f"best native precision: {best}" + ("" if native else " (bf16 is emulated on this CPU)"),
             "2048^3 matmul GFLOP/s: " + ", ".join(f"{p} {v:.0f}" for p, v in peak.items()), "",
             "| model | batch | precision | images/s | step s | GFLOP/step | GFLOP/s | % of matmul | "
             f"share of {best} rate | side by side |", "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in args.models:
        for batch_size in args.batch_sizes:
            batches = [data.images[torch.randint(len(data), (batch_size,), generator=gen)].long() for _ in range(4)]
            torch.manual_seed(0)
            model = build_model(name, data.image_shape, data.levels, **OPTIONS)
            flops = training_flops(model, batches[0])
            for precision in precisions:
                others = contenders(name, model)
                seconds = side_by_side({"ours": model, **others}, batches, precision, args.warmup, args.steps)
                images_per_s = batch_size / seconds["ours"]
                gflops = flops / seconds["ours"] / 1e9
                versus = "; ".join(f"{other} {batch_size / seconds[other]:.1f} images/s, ours / {other} "
                                   f"{seconds[other] / seconds['ours']:.2f}x" for other in others)
                label = name + (" (wavefront)" if getattr(model, "wavefront", False) else "")
                line = (f"| {label} | {batch_size} | {precision} | {images_per_s:.1f} | {seconds['ours']:.3f} | "
                        f"{flops / 1e9:.1f} | {gflops:.0f} | {100 * gflops / peak[precision]:.0f}% | "
                        f"{100 * share_of_matmul(name, images_per_s, peak[best]):.0f}% | {versus} |")
                lines.append(line)
                print(line, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
