"""Reading and writing images: sample grids and single PNGs.

Values in [0, K) are shown as grey or colour levels spread over 0..255, so a 2-level or 17-level model's images are
as visible as an 8-bit one's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor, levels: int) -> np.ndarray:
    """int [N, C, H, W] in [0, levels) -> uint8 [N, H, W, C] in [0, 255]."""
    scaled = (x.detach().cpu().double() * (255.0 / (levels - 1))).round().clamp(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid(x: torch.Tensor, levels: int, columns: int | None = None, padding: int = 2, scale: int = 1) -> Image.Image:
    """Tile images [N, C, H, W] into one picture, ``columns`` wide (about square by default)."""
    pixels = to_uint8(x, levels)
    n, h, w, c = pixels.shape
    columns = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / columns))
    canvas = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8)
    for k in range(n):
        r, col = divmod(k, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        canvas[top:top + h, left:left + w] = pixels[k]
    image = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_grid(x: torch.Tensor, levels: int, path: str | Path, columns: int | None = None, scale: int | None = None) -> Path:
    """Write a PNG grid of images; small images are enlarged so the grid is easy to look at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale is None:
        scale = max(1, 64 // max(x.shape[-2:]))
    grid(x, levels, columns, scale=scale).save(path)
    return path


def completion_panel(originals: torch.Tensor, known: torch.Tensor, completions: torch.Tensor, levels: int,
                     path: str | Path) -> Path:
    """A panel like the paper's figure 1: per row, the occluded image, the completions, and the original.

    Args:
        originals: [N, C, H, W] values in [0, levels).
        known: bool [C, H, W] or [N, C, H, W]; hidden values are shown in mid grey.
        completions: [N, k, C, H, W].
    """
    n, k = completions.shape[:2]
    occluded = torch.where(known.expand_as(originals), originals, torch.full_like(originals, (levels - 1) // 2))
    rows = torch.cat([occluded[:, None], completions, originals[:, None]], dim=1)  # (N, k + 2, C, H, W)
    return save_grid(rows.flatten(0, 1), levels, path, columns=k + 2)


def read_image(path: str | Path, image_shape: tuple[int, int, int], levels: int) -> torch.Tensor:
    """Read a PNG/JPEG as int64 [C, H, W] values in [0, levels), checking it against a model's image shape.

    8-bit values map to K levels as :func:`to_uint8` wrote them (v -> round(v * (K - 1) / 255)); values that do not
    lie on one of the K levels are an error, since a lossless codec must not round them silently.
    """
    from PIL import UnidentifiedImageError

    from .errors import PixelRNNError

    c, h, w = image_shape
    try:
        with Image.open(path) as picture:
            mode = picture.mode
            if mode in ("L", "1", "P", "I;16") and c == 1:
                picture = picture.convert("L")
            elif mode in ("RGB", "RGBA", "P") and c == 3:
                picture = picture.convert("RGB")
            else:
                raise PixelRNNError(f"{path} is a {mode} image, but the model codes images with {c} channel(s)")
            pixels = np.asarray(picture).copy()
    except (OSError, UnidentifiedImageError) as e:
        raise PixelRNNError(f"{path} is not a readable image ({e})") from None
    if pixels.shape[:2] != (h, w):
        raise PixelRNNError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, but the model codes {w}x{h} images")
    values = torch.from_numpy(pixels.reshape(h, w, c)).permute(2, 0, 1).long()
    if levels == 256:
        return values
    scaled = torch.round(values.double() * (levels - 1) / 255).long()
    if not np.array_equal(to_uint8(scaled[None], levels)[0], pixels.reshape(h, w, c)):
        raise PixelRNNError(f"{path} has 8-bit values that are not on the model's {levels} levels")
    return scaled


def save_image(x: torch.Tensor, levels: int, path: str | Path) -> None:
    """Write one image [C, H, W] of values in [0, levels) as a PNG (lossless)."""
    pixels = to_uint8(x[None], levels)[0]
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
