"""``pixelrnn sample`` and ``pixelrnn complete``: draw images from a model, or complete occluded real ones.

Both run the model's one sampling loop (``model.sample``, and ``model.complete``, which keeps the known values), in
the paper's order: pixel by pixel in raster order, and R, G, B inside a pixel.
"""

from __future__ import annotations

import torch

from .. import devices, explain_figures, pretrained
from ..budget import check_generation_fits
from ..errors import ConfigError
from ..explain import check_pixels, explain, first_hidden_pixel
from ..generate import complete_each
from ..pictures import completion_panel, save_grid
from ..occlusion import occlusion
from .common import Shared, chosen_images, count, natural, output_flags, pixel, writable


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
    count = args.n if columns is None else len(y)
    check_generation_fits(model, count, f"sampling {count:,} images at once", "ask for fewer with -n",
                          naive=args.method == "naive")
    x = model.sample(count, temperature=args.temperature, generator=generator, method=args.method,
                     progress=not args.quiet, y=y)
    path = save_grid(x.cpu(), model.levels, output, columns=columns)
    what = f"{args.n} samples of each of {classes} classes (one row per class)" if columns else f"{args.n} samples"
    print(f"wrote {what} to {path}")
    return 0


def add_complete(sub, shared: Shared) -> None:
    p = sub.add_parser(
        "complete", help="occlude real images and sample the rest several times",
        parents=[shared.run, shared.running, shared.trained_on, shared.split, shared.data_dir, shared.generation,
                 shared.quiet],
        description="Occlude part of real images (image files, or a split of a data set) and complete them with "
                    "the model, as in the paper's figure 1. The model generates in raster order, so it conditions "
                    "only on what comes before each value: with an occlusion that is not a suffix in raster order "
                    "(right-half, a box, a mask), the known pixels after the first hidden one are kept but cannot "
                    "influence the values drawn before them.")
    p.add_argument("images", nargs="*", help="PNG/JPEG files of the model's size (default: images of --split)")
    p.add_argument("--occlude", default="bottom-half",
                   help="bottom-half, right-half, box:x0,y0,x1,y1, or a PNG mask (white = hidden)")
    p.add_argument("-n", type=count, default=8, help="number of images of the split (without image files)")
    p.add_argument("--first", type=natural, default=0, help="index of the first image in the split")
    p.add_argument("-k", "--samples", type=count, default=4, help="completions per image")
    p.add_argument("--class", dest="class_label", type=int,
                   help="the class of every image (class-conditional models; default: a split's own labels)")
    output_flags(p, "completions.png", "the PNG panel to write")
    p.add_argument("--explain", action="store_true",
                   help="also write OUTPUT-explain.png: each image's first completion, its bit map, and the "
                        "distribution its value at --pixel was drawn from (needs matplotlib)")
    p.add_argument("--pixel", type=pixel, metavar="ROW,COL",
                   help="with --explain, the pixel whose distribution to show (default: the first one drawn)")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    output = writable(args.output, args.force, image=True)
    if args.pixel and not args.explain:
        raise ConfigError("--pixel chooses the pixel of --explain; add --explain")
    explained = None
    if args.explain:
        explained = writable(output.with_name(f"{output.stem}-explain{output.suffix}"), args.force)
        explain_figures.pyplot()  # a missing matplotlib is one line before the long work
    model, originals, y, _ = chosen_images(args, args.n, "-n")
    known = occlusion(args.occlude, model.image_shape)
    if explained:
        pixels = check_pixels([args.pixel or first_hidden_pixel(model, known)], model.image_shape)
        explain_figures.check_rows(len(originals))
    model.to(devices.resolve_device(args.device))
    check_generation_fits(model, len(originals) * args.samples, f"{len(originals)} x {args.samples:,} completions "
                          "at once", "ask for fewer images (-n) or completions per image (-k)")
    completions = complete_each(model, originals, known, args.samples, temperature=args.temperature,
                                generator=devices.generator(model.device, args.seed), y=y, progress=not args.quiet)
    path = completion_panel(originals, known, completions.cpu(), model.levels, output)
    print(f"wrote {len(originals)} x {args.samples} completions to {path}")
    if explained:
        # The first completion of each image, and the distribution (at the sampling temperature) that its value at
        # the pixel was drawn from, given the values before it.
        first = completions[:, 0]
        explanation = explain(model, first, y, pixels=pixels, temperature=args.temperature)
        names = [f"completion of image {k}" for k in range(len(first))]
        written = explain_figures.save_figure(explanation, explained, names=names, marked="the value drawn")
        print(f"wrote the first completion of each image, its bit map and the distribution at pixel "
              f"{pixels[0][0]},{pixels[0][1]} to {written}")
    return 0
