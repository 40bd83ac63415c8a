"""How fast the exact codec could be with its own matrix products: the bound the float64 integers put on it.

The exact path (:mod:`pixelrnn.exact`) computes every product in float64 on integers, which is what makes a file
decode bit for bit on any machine, and a float64 product runs at about half the rate of a float32 one. This script
records every matrix product the codec makes (the encoder's full passes; the decoder's step-wise walk), times each
alone at its shapes, strides and dtype in the same run (as ``benchmarks/roofline.py`` does for training steps), and
sums them: the fastest the codec could run if everything but its products took no time at all. Beside it, in the
same run and on the same images: ``evaluate``'s images/s (fp32, batch 16), which the encoder is measured against,
and the float decoder of format 2 (float64 after the model, one thread), which the exact decoder is measured
against.

The "ceiling" columns are the ratios the codec would reach with products alone: an encoder whose products alone
take longer than ``evaluate``'s whole pass cannot reach half its speed however little else it does.

    python benchmarks/codec_limits.py [MODEL ...] [--encode-images 256] [--decode-images 16] [--out limits.md]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import torch

from compression import integer_of
from pixelrnn import codec, pretrained
from pixelrnn.allocator import tune
from pixelrnn.data import load_dataset
from pixelrnn.devices import cpu_name
from pixelrnn.evaluate import evaluate
from roofline import RecordMatrixOps, time_alone

MODELS = ("fashion-pixelcnn", "fashion-pixelcnn-classes", "fashion-row-lstm", "fashion-diagonal-bilstm",
          "fashion-multiscale")


def fastest(work, repeats: int = 2) -> float:
    """The fastest of ``repeats`` timed calls after one untimed call: another process only ever adds time."""
    work()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def products_alone(work, budget: float = 0.2) -> float:
    """Seconds the matrix products of ``work()`` take, each timed alone at its recorded shapes, summed."""
    with RecordMatrixOps(torch.device("cpu")) as recorder:
        work()
    counts: dict[tuple, int] = defaultdict(int)
    for func, args, kwargs, _ in recorder.calls:
        counts[(func, args, kwargs)] += 1
    return sum(time_alone(func, args, kwargs, torch.device("cpu"), budget) * n
               for (func, args, kwargs), n in counts.items())


def limits_row(name: str, images: torch.Tensor, labels: torch.Tensor | None, encode_n: int, decode_n: int) -> str:
    model = pretrained.load(name)
    integer = integer_of(model, name)
    labels = labels if model.settings.num_classes else None
    x, y = images[:encode_n], None if labels is None else labels[:encode_n]
    evaluate_s = fastest(lambda: evaluate(model, x, y, batch_size=16))
    encode_s = fastest(lambda: codec.encode(model, x, labels=y, integer=integer))
    encode_products_s = products_alone(lambda: codec.encode(model, x, labels=y, integer=integer))

    xd, yd = images[:decode_n], None if labels is None else labels[:decode_n]
    exact_file = codec.encode(model, xd, labels=yd, integer=integer)
    exact_s = fastest(lambda: codec.decode(model, exact_file, integer=integer), repeats=1)
    decode_products_s = products_alone(lambda: codec.decode(model, exact_file, integer=integer))
    rate = lambda n, s: f"{n / s:.1f}"  # noqa: E731
    if labels is None:
        float_file = codec.encode(model, xd, path="float")
        float_s = fastest(lambda: codec.decode(model, float_file), repeats=1)
        against_float = (f"{rate(decode_n, float_s)} | {rate(decode_n, exact_s)} | {float_s / exact_s:.2f} | "
                         f"{rate(decode_n, decode_products_s)} | {float_s / decode_products_s:.2f}")
    else:  # the float path stores no class: there is no float decoder of a class-conditional model to compare
        against_float = f"none | {rate(decode_n, exact_s)} | | {rate(decode_n, decode_products_s)} |"
    return (f"| {name} | {rate(encode_n, evaluate_s)} | {rate(encode_n, encode_s)} | {evaluate_s / encode_s:.2f} | "
            f"{rate(encode_n, encode_products_s)} | {evaluate_s / encode_products_s:.2f} | {against_float} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--encode-images", type=int, default=256)
    parser.add_argument("--decode-images", type=int, default=16)
    parser.add_argument("--out")
    args = parser.parse_args()
    tune()  # as the pixelrnn command does: its full passes allocate large maps, which then page-fault less
    split = load_dataset("fashion-mnist", "test")
    images = split.images.long()
    lines = [f"{cpu_name()}, {torch.get_num_threads()} thread(s), load average "
             f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; Fashion-MNIST test images: {args.encode_images} "
             f"encoded, {args.decode_images} decoded (one file)", "",
             "| model | evaluate images/s | encode images/s | encode / evaluate | encoder's products alone, images/s "
             "| ceiling of encode / evaluate | float decoder images/s | exact decoder images/s | exact / float "
             "| exact decoder's products alone, images/s | ceiling of exact / float |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.models:
        lines.append(limits_row(name, images, split.labels, args.encode_images, args.decode_images))
        print(lines[-1], flush=True)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
