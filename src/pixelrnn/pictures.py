"""Pictures for a person to look at: sample grids and completion panels.

The paper ("Pixel Recurrent Neural Networks", van den Oord et al., ICML 2016) shows samples as grids and completions
as rows of occluded image, completions and original (its figure 1). Small images are enlarged by an integer factor
with nearest neighbour, so that each is at least 64 pixels on its shorter side (8x8 digits x8, 28x28 x3, 64x64 x1):
every image pixel becomes a square block of one value, and no value changes. Lossless files for a program are
:mod:`pixelrnn.images`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .images import image_format, to_uint8, write_encoded


VIEW_SIDE = 64


def enlargement(height: int, width: int) -> int:
    """The integer factor that shows an image at least :data:`VIEW_SIDE` (64) pixels on its shorter side.

    Args:
        height: the image's height in pixels.
        width: its width.

    Returns:
        ceil(64 / min(height, width)), and 1 for images that are already that large.
    """
    return max(1, math.ceil(VIEW_SIDE / min(height, width)))


@dataclass(frozen=True)
class Layout:
    """Where the images of a grid lie: ``count`` tiles of (height * scale, width * scale) pixels, ``columns`` to a
    row, with ``gap`` white pixels between and around them."""

    count: int
    columns: int
    height: int  # of one image, before enlargement
    width: int
    scale: int
    gap: int

    @classmethod
    def of(cls, count: int, height: int, width: int, columns: int | None = None, scale: int | None = None) -> Layout:
        """The layout of ``count`` images of ``height`` x ``width``.

        Args:
            count: the number of images.
            height: the height of one image.
            width: its width.
            columns: images per row; about square by default.
            scale: the enlargement; by default :func:`enlargement`'s.

        Returns:
            The layout.
        """
        columns = columns or max(1, math.ceil(math.sqrt(count)))
        scale = enlargement(height, width) if scale is None else scale
        # The gap follows the enlarged tile (a sixteenth of its shorter side), so a grid of 8x8 digits shown x8 looks
        # like one of 64x64 images shown x1, rather than like white bars with pictures between them.
        gap = max(2, min(height, width) * scale // 16)
        return cls(count, columns, height, width, scale, gap)

    @property
    def rows(self) -> int:
        return math.ceil(self.count / self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole grid in pixels, PIL's order."""
        return (self.columns * (self.width * self.scale + self.gap) + self.gap,
                self.rows * (self.height * self.scale + self.gap) + self.gap)

    def origin(self, k: int) -> tuple[int, int]:
        """(top, left) pixel of image ``k``'s tile."""
        r, c = divmod(k, self.columns)
        return (self.gap + r * (self.height * self.scale + self.gap),
                self.gap + c * (self.width * self.scale + self.gap))


def grid(x: torch.Tensor, levels: int, columns: int | None = None, scale: int | None = None) -> Image.Image:
    """Tile images into one picture, each enlarged with nearest neighbour (see :class:`Layout`).

    Args:
        x: int [N, C, H, W] values in [0, levels).
        levels: the number of levels K.
        columns: images per row; about square by default.
        scale: the enlargement; by default :func:`enlargement`'s (at least 64 pixels on an image's shorter side).

    Returns:
        A greyscale (C = 1) or RGB picture, white between the images.
    """
    layout = Layout.of(len(x), *x.shape[-2:], columns=columns, scale=scale)
    pixels = to_uint8(x, levels).repeat(layout.scale, axis=1).repeat(layout.scale, axis=2)  # (N, H*s, W*s, C)
    width, height = layout.size
    canvas = np.full((height, width, pixels.shape[-1]), 255, np.uint8)
    for k, tile in enumerate(pixels):
        top, left = layout.origin(k)
        canvas[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    return Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)


def save_grid(x: torch.Tensor, levels: int, path: str | Path, columns: int | None = None,
              scale: int | None = None) -> Path:
    """Write a grid of images (see :func:`grid`) to ``path``.

    Args:
        x: int [N, C, H, W] values in [0, levels).
        levels: the number of levels K.
        path: the picture to write; its extension names the format (.png is lossless).
        columns: images per row; about square by default.
        scale: the enlargement; by default at least 64 pixels on an image's shorter side.

    Returns:
        ``path``.
    """
    image_format(path)  # a bad name is refused before the grid is drawn
    return write_encoded(grid(x, levels, columns, scale=scale), path)


def label_row(picture: Image.Image, layout: Layout, labels: Sequence[tuple[str, int, int]]) -> Image.Image:
    """``picture`` (a grid of ``layout``) with a white row on top naming its columns, in PIL's default font.

    Args:
        picture: the grid.
        layout: its layout.
        labels: (text, first column, last column) per label; each is centred over its columns.

    Returns:
        A new picture, taller by the label row; the grid below it is unchanged.
    """
    font = ImageFont.load_default()  # shipped with Pillow: no font file to find
    draw = ImageDraw.Draw(picture)
    boxes = [draw.textbbox((0, 0), text, font=font) for text, _, _ in labels]
    height = max(box[3] for box in boxes) + 2 * layout.gap
    out = Image.new(picture.mode, (picture.width, picture.height + height), "white")
    out.paste(picture, (0, height))
    draw = ImageDraw.Draw(out)
    tile = layout.width * layout.scale
    for (text, first, last), box in zip(labels, boxes):
        centre = (layout.origin(first)[1] + layout.origin(last)[1] + tile) / 2
        draw.text((round(centre - (box[2] - box[0]) / 2 - box[0]), layout.gap), text, fill="black", font=font)
    return out


def completion_panel(originals: torch.Tensor, known: torch.Tensor, completions: torch.Tensor, levels: int,
                     path: str | Path) -> Path:
    """Write :func:`completion_picture`'s panel to ``path``.

    Returns:
        ``path``.
    """
    image_format(path)  # a bad name is refused before the panel is drawn
    return write_encoded(completion_picture(originals, known, completions, levels), path)


def completion_picture(originals: torch.Tensor, known: torch.Tensor, completions: torch.Tensor,
                       levels: int) -> Image.Image:
    """A panel like the paper's figure 1: per row, the occluded image, the completions, and the original.

    Images are enlarged as in :func:`grid`, under a label row naming the columns.

    Args:
        originals: [N, C, H, W] values in [0, levels).
        known: bool [C, H, W] or [N, C, H, W]; hidden values are shown in mid grey.
        completions: [N, k, C, H, W].
        levels: the number of levels K.

    Returns:
        The panel.
    """
    n, k = completions.shape[:2]
    occluded = torch.where(known.expand_as(originals), originals, torch.full_like(originals, (levels - 1) // 2))
    rows = torch.cat([occluded[:, None], completions, originals[:, None]], dim=1).flatten(0, 1)  # (N (k + 2), C, H, W)
    layout = Layout.of(len(rows), *rows.shape[-2:], columns=k + 2)
    labels = [("occluded", 0, 0), ("completions" if k > 1 else "completion", 1, k), ("original", k + 1, k + 1)]
    return label_row(grid(rows, levels, columns=k + 2), layout, labels)
