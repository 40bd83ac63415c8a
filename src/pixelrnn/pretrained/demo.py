"""The shipped Fashion-MNIST PixelCNN at work, without training: ``python -m pixelrnn.pretrained.demo`` (``make demo``).

Writes a sample grid; where Fashion-MNIST is installed, also a completion panel and one line comparing the model's
lossless compression of 100 test images with PNG. Where the model is not shipped or the data is missing, it says so
in one line and still succeeds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from .. import codec
from ..data import load_dataset
from ..errors import DataError
from ..images import save_image
from ..pictures import completion_panel, save_grid
from ..occlusion import occlusion
from . import load_pretrained, names, shipped

NAME = "fashion-pixelcnn"
INSTALL = ("Fashion-MNIST is not installed, so no completions or compression: `sudo apt-get install "
           "dataset-fashion-mnist`, or place its four .gz files in ~/.cache/pixelrnn/data/fashion-mnist")


def png_bits_per_dim(images: torch.Tensor, levels: int) -> float:
    """Bits/dim of the images stored as one PNG file each (the usual lossless baseline)."""
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [save_image(x, levels, Path(tmp) / f"{k}.png").stat().st_size for k, x in enumerate(images)]
    return 8 * sum(sizes) / images.numel()


def demo(out: str | Path, name: str = NAME, samples: int = 16, compress: int = 100, data_dir=None) -> int:
    """Sample, complete and compress with the shipped model ``name``, writing into ``out``."""
    if name not in names():
        print(f"no shipped {name} in this version (`pixelrnn models`); skipping the pretrained demo")
        return 0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_pretrained(name)
    generator = torch.Generator().manual_seed(0)
    path = save_grid(model.sample(samples, generator=generator), model.levels, out / f"{name}-samples.png")
    print(f"{name}: {samples} samples in {path}")
    try:
        data = load_dataset(shipped(name).record["data"], "test", data_dir, download=False)
    except DataError:
        print(INSTALL)
        return 0
    originals = data.images[:4].long()
    known = occlusion("bottom-half", model.image_shape)
    completions = model.complete(originals.repeat_interleave(3, dim=0), known, generator=generator)
    path = completion_panel(originals, known, completions.view(4, 3, *model.image_shape), model.levels,
                            out / f"{name}-completions.png")
    print(f"{name}: completions of the bottom half of 4 test images in {path}")
    images = data.images[:compress].long()
    coded = 8 * len(codec.encode(model, images)) / images.numel()
    print(f"{name}: {compress} test images compressed losslessly to {coded:.3f} bits/dim; "
          f"as PNG files {png_bits_per_dim(images, model.levels):.3f} bits/dim")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="folder for the pictures")
    p.add_argument("--name", default=NAME, help="the shipped model")
    args = p.parse_args(argv)
    return demo(args.out, args.name)


if __name__ == "__main__":
    sys.exit(main())
