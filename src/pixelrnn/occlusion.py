"""Which pixels a completion keeps: the occlusions of ``pixelrnn complete --occlude``.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), figure 1, completes occluded images: the kept
values condition the model, the hidden ones are drawn. An occlusion here is a boolean ``known`` mask [C, H, W] for
:func:`pixelrnn.generate.complete`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import PixelRNNError
from .images import open_image

OCCLUSIONS = ("bottom-half", "right-half", "box:x0,y0,x1,y1", "PATH.png")


def occlusion(spec: str, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The ``known`` mask [C, H, W] (True = kept) for an occlusion given on the command line.

    Args:
        spec: "bottom-half", "right-half", "box:x0,y0,x1,y1" (columns x0..x1-1 of rows y0..y1-1 are hidden), or the
            path of a PNG of the image's size whose white (>= 128) pixels are hidden.
        image_shape: (C, H, W).
    """
    c, h, w = image_shape
    hidden = torch.zeros(h, w, dtype=torch.bool)
    if spec == "bottom-half":
        hidden[h // 2:] = True
    elif spec == "right-half":
        hidden[:, w // 2:] = True
    elif spec.startswith("box:"):
        try:
            x0, y0, x1, y1 = (int(v) for v in spec[4:].split(","))
        except ValueError:
            raise PixelRNNError(f"--occlude {spec!r}: a box is box:x0,y0,x1,y1 with four integers") from None
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise PixelRNNError(f"--occlude {spec!r}: the box must lie inside the {w}x{h} image, with x0 < x1, y0 < y1")
        hidden[y0:y1, x0:x1] = True
    else:
        if not Path(spec).is_file():
            raise PixelRNNError(f"--occlude {spec!r} is none of {', '.join(OCCLUSIONS[:3])}, and not a readable "
                                f"PNG mask")
        with open_image(spec) as picture:  # a damaged file, or a decompression bomb, is one ImageError line
            mask = torch.from_numpy(np.asarray(picture.convert("L")).copy()) >= 128
        if tuple(mask.shape) != (h, w):
            raise PixelRNNError(f"the mask {spec} is {mask.shape[1]}x{mask.shape[0]}, the images are {w}x{h}")
        hidden = mask
    if not hidden.any():
        raise PixelRNNError(f"--occlude {spec!r} hides no pixel")
    return (~hidden).expand(c, h, w)
