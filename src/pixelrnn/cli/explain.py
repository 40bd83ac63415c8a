"""``pixelrnn explain``: where images cost bits under a model, and its predictive distributions at chosen pixels.

A thin layer over :func:`pixelrnn.explain.explain` and :func:`pixelrnn.explain_figures.save_figure`: the bit map of
each image (-log2 p of each value given the values before it, "Pixel Recurrent Neural Networks", section 2), its
total in bits/dim (``evaluate``'s figure for the same images and precision), and with ``--pixel`` the K-way
distribution of each channel at that pixel, as in the paper's figure of softmax activations.
"""

from __future__ import annotations

import json

from .. import devices, explain_figures
from ..errors import write_atomic
from ..explain import check_pixels, explain
from ..precision import PRECISIONS, resolve_precision
from .common import Shared, chosen_images, count, natural, output_flags, path, pixel, warn_if_emulated, writable

LIMIT = 4  # images of a split by default: a figure of one row each


def add_explain(sub, shared: Shared) -> None:
    p = sub.add_parser(
        "explain", help="bit maps of images and the model's distribution at a pixel (needs matplotlib)",
        parents=[shared.run, shared.running, shared.trained_on, shared.split, shared.data_dir],
        description="Draw, for each image, the image, its bit map (-log2 p of each pixel given everything before "
                    "it in the model's order, its channels added; per channel too for colour images) with a colour "
                    "bar in bits, and its bits/dim, which is `pixelrnn evaluate`'s figure for the same images. "
                    "--pixel ROW,COL adds the K-way distribution of each channel at that pixel, given the image's "
                    "values before it, with the image's own value marked. Needs matplotlib: "
                    "pip install 'pixelrnn[plot]'.")
    p.add_argument("images", nargs="*", help="PNG/JPEG files of the model's size (default: images of --split)")
    p.add_argument("--limit", type=count, default=LIMIT, help="images of the split (without image files)")
    p.add_argument("--first", type=natural, default=0, help="index of the first image in the split")
    p.add_argument("--pixel", type=pixel, action="append", default=[], metavar="ROW,COL",
                   help="a pixel (row, column from 0) whose distributions to draw (repeatable)")
    p.add_argument("--class", dest="class_label", type=int,
                   help="the class of every image (class-conditional models; default: a split's own labels)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the device runs it natively, else fp32 (as `evaluate`)")
    p.add_argument("--batch-size", type=count, help="images per forward pass (speed only)")
    p.add_argument("--json", type=path, help="also write the figures as JSON: bits/dim of all and of each image, "
                                             "and the distributions at each --pixel")
    output_flags(p, "map.png", "the picture to write")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    output = writable(args.output, args.force, image=True)
    record = writable(args.json, args.force) if args.json else None
    explain_figures.pyplot()  # a missing matplotlib is one line before any work
    model, images, labels, names = chosen_images(args, args.limit, "--limit")
    pixels = check_pixels(args.pixel, model.image_shape)
    explain_figures.check_rows(len(images))
    device = devices.resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    warn_if_emulated(args.precision, device)
    explanation = explain(model.to(device), images, labels, pixels=pixels, batch_size=args.batch_size,
                          precision=precision)
    width = max(12, *(len(name) + 2 for name in names))
    print(f"{'image':<{width}}{'bits/dim':>10}{'costliest pixel':>18}")
    for name, bits, costs in zip(names, explanation.bits_per_dim.tolist(), explanation.pixel_bits):
        row, column = divmod(int(costs.argmax()), costs.shape[1])
        print(f"{name:<{width}}{bits:>10.4f}{f'{row},{column}: {costs.max():.2f} bits':>18}")
    print(f"{'all ' + str(len(images)):<{width}}{explanation.total_bits_per_dim:>10.4f}   ({precision}; "
          f"`pixelrnn evaluate` gives the same figure for these images)")
    channels = explain_figures.CHANNELS[model.image_shape[0]]
    for p, (row, column) in enumerate(explanation.pixels):
        for n, name in enumerate(names):
            probabilities = explanation.probabilities[n, p]
            parts = [f"{channel} {value}: p {probabilities[c, value]:.4f}, most likely {int(probabilities[c].argmax())}"
                     for c, (channel, value) in enumerate(zip(channels, explanation.true_values[n, p].tolist()))]
            print(f"pixel {row},{column} of {name}: " + "; ".join(parts))
    print(f"wrote {explain_figures.save_figure(explanation, output, names=names)}")
    if record:
        write_atomic(record, (json.dumps(as_record(explanation, names, precision), indent=2) + "\n").encode())
        print(f"wrote {record}")
    return 0


def as_record(explanation, names: list[str], precision: str) -> dict:
    """The figures of an explanation as plain JSON-able values (the maps stay in the picture)."""
    return {"bits_per_dim": explanation.total_bits_per_dim, "images": len(names), "precision": precision,
            "per_image": [{"name": name, "bits_per_dim": bits, "nats": nats}
                          for name, bits, nats in zip(names, explanation.bits_per_dim.tolist(),
                                                      explanation.nats.tolist())],
            "pixels": [{"pixel": list(pixel), "true_values": explanation.true_values[:, p].tolist(),
                        "probabilities": explanation.probabilities[:, p].tolist()}
                       for p, pixel in enumerate(explanation.pixels)]}
