"""``pixelrnn sample`` and ``pixelrnn complete``: draw images from a model, or complete occluded real ones.

Both run the model's one sampling loop (``model.sample``, and ``model.complete``, which keeps the known values), in
the paper's order: pixel by pixel in raster order, and R, G, B inside a pixel.
"""

from __future__ import annotations

import torch

from .. import devices, pretrained
from ..errors import ConfigError
from ..fitting import load_with_data
from ..images import completion_panel, save_grid
from ..occlusion import occlusion
from .common import Shared, count, natural, output_flags, writable


def add_sample(sub, shared: Shared) -> None:
    p = sub.add_parser("sample", help="draw samples into a PNG grid",
                       parents=[shared.run, shared.running, shared.generation, shared.quiet])
    p.add_argument("-n", type=count, default=64, help="number of images (per class with --per-class)")
    output_flags(p, "samples.png", "the PNG grid to write")
    p.add_argument("--class", dest="class_label", type=int, help="the class to draw (class-conditional models)")
    p.add_argument("--per-class", action="store_true", help="a grid with one row of -n samples per class")
    p.add_argument("--method", default="fast", choices=("fast", "naive"),
                   help="fast: each layer at the new pixel only; naive: a full forward pass per value")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    output = writable(args.output, args.force, image=True)
    model = pretrained.load(args.run, verify=not args.no_verify).to(devices.resolve_device(args.device))
    generator = devices.generator(model.device, args.seed)
    classes = model.settings.num_classes
    model.check_labels(args.class_label)  # --class: a clear error for an unconditional model or a bad label
    if args.per_class and not classes:
        raise ConfigError("this model is not class-conditional; train it with --class-conditional to use --per-class")
    y, columns = args.class_label, None
    if args.per_class:
        y, columns = torch.arange(classes).repeat_interleave(args.n), args.n  # one row of n images per class
    x = model.sample(args.n if columns is None else len(y), temperature=args.temperature, generator=generator,
                     method=args.method, progress=not args.quiet, y=y)
    path = save_grid(x.cpu(), model.levels, output, columns=columns)
    what = f"{args.n} samples of each of {classes} classes (one row per class)" if columns else f"{args.n} samples"
    print(f"wrote {what} to {path}")
    return 0


def add_complete(sub, shared: Shared) -> None:
    p = sub.add_parser(
        "complete", help="occlude real images and sample the rest several times",
        parents=[shared.run, shared.running, shared.trained_on, shared.split, shared.data_dir, shared.generation,
                 shared.quiet],
        description="Occlude part of real images and complete them with the model, as in the paper's figure 1. "
                    "The model generates in raster order, so it conditions only on what comes before each value: "
                    "with an occlusion that is not a suffix in raster order (right-half, a box, a mask), the known "
                    "pixels after the first hidden one are kept but cannot influence the values drawn before them.")
    p.add_argument("--occlude", default="bottom-half",
                   help="bottom-half, right-half, box:x0,y0,x1,y1, or a PNG mask (white = hidden)")
    p.add_argument("-n", type=count, default=8, help="number of images")
    p.add_argument("--first", type=natural, default=0, help="index of the first image in the split")
    p.add_argument("-k", "--samples", type=count, default=4, help="completions per image")
    output_flags(p, "completions.png", "the PNG panel to write")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    output = writable(args.output, args.force, image=True)
    model, data = load_with_data(args.run, args.data, args.split, args.data_dir, verify=not args.no_verify)
    model.to(devices.resolve_device(args.device))
    originals = data.images[args.first:args.first + args.n].long()
    known = occlusion(args.occlude, model.image_shape)
    # Every original is completed k times in one batch: rows of the batch are (image, completion).
    batch = originals.repeat_interleave(args.samples, dim=0)
    generator = devices.generator(model.device, args.seed)
    y = None
    if model.settings.num_classes and data.labels is not None:  # complete each image as its own class
        y = data.labels[args.first:args.first + args.n].repeat_interleave(args.samples)
    completions = model.complete(batch, known, temperature=args.temperature, generator=generator,
                                 progress=not args.quiet, y=y)
    path = completion_panel(originals, known,
                            completions.cpu().view(len(originals), args.samples, *model.image_shape),
                            model.levels, output)
    print(f"wrote {len(originals)} x {args.samples} completions to {path}")
    return 0
