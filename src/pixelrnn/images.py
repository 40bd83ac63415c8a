"""Reading and writing images: sample grids and single PNGs.

Values in [0, K) are shown as grey or colour levels spread over 0..255, so a 2-level or 17-level model's images are
as visible as an 8-bit one's.

Every image the package opens goes through :func:`open_image`, which turns PIL's failures (an unreadable or
truncated file, or one that declares more pixels than PIL's decompression-bomb limit) into one
:class:`~pixelrnn.errors.ImageError` line. Every image it writes is encoded in memory and then written atomically,
so a failed write never leaves a half-written picture where a good one was.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError, ImageError, OutputError, write_atomic

# What PIL raises for a file it cannot decode: OSError (and its UnidentifiedImageError) for most damage, but a
# truncated or malformed file can also surface as one of the others while decoding. DecompressionBombError is not an
# OSError: it derives from Exception directly.
_PIL_ERRORS = (OSError, Image.DecompressionBombError, ValueError, SyntaxError, EOFError)


@contextmanager
def open_image(path: str | Path):
    """Open an image with PIL, for reading inside the block; any failure to read it is one ImageError line.

    Convert or copy the pixels inside the block: PIL decodes lazily, so damage can surface only then.
    """
    try:
        with Image.open(path) as picture:
            yield picture
    except Image.DecompressionBombError:
        raise ImageError(f"{path} declares more pixels than PIL opens safely ({Image.MAX_IMAGE_PIXELS:,}, its "
                         f"decompression-bomb limit); give a smaller image") from None
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image file") from None
    except _PIL_ERRORS as e:
        raise ImageError(f"{path} is not a readable image ({e})") from None


def image_format(path: str | Path) -> str:
    """The PIL format that ``path``'s extension names, checked before any work is done to fill the file.

    Raises:
        OutputError: ``path`` is an existing directory.
        ConfigError: ``path`` has no extension, or one that PIL cannot write.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give an image file name such as {path / 'samples.png'}")
    Image.init()  # registers every plugin, so that all writable extensions are known
    writable = {ext: fmt for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}
    if not path.suffix:
        raise ConfigError(f"{path} has no file extension; name the image .png (lossless) or .jpg, .webp, ...")
    if path.suffix.lower() not in writable:
        raise ConfigError(f"{path}: PIL cannot write {path.suffix!r} images; name the image .png (lossless) or "
                          f".jpg, .webp, ...")
    return writable[path.suffix.lower()]


def _write(image: Image.Image, path: str | Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, image_format(path))
    return write_atomic(path, buffer.getvalue())


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
    image_format(path)  # a bad name is refused before the grid is drawn
    if scale is None:
        scale = max(1, 64 // max(x.shape[-2:]))
    return _write(grid(x, levels, columns, scale=scale), path)


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
    c, h, w = image_shape
    with open_image(path) as picture:
        mode = picture.mode
        if mode in ("L", "1", "P", "I;16") and c == 1:
            picture = picture.convert("L")
        elif mode in ("RGB", "RGBA", "P") and c == 3:
            picture = picture.convert("RGB")
        else:
            raise ImageError(f"{path} is a {mode} image, but the model codes images with {c} channel(s)")
        pixels = np.asarray(picture).copy()
    if pixels.shape[:2] != (h, w):
        raise ImageError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, but the model codes {w}x{h} images")
    values = torch.from_numpy(pixels.reshape(h, w, c)).permute(2, 0, 1).long()
    if levels == 256:
        return values
    scaled = torch.round(values.double() * (levels - 1) / 255).long()
    if not np.array_equal(to_uint8(scaled[None], levels)[0], pixels.reshape(h, w, c)):
        raise ImageError(f"{path} has 8-bit values that are not on the model's {levels} levels")
    return scaled


def save_image(x: torch.Tensor, levels: int, path: str | Path) -> Path:
    """Write one image [C, H, W] of values in [0, levels) to ``path`` (give it a lossless type: .png)."""
    pixels = to_uint8(x[None], levels)[0]
    return _write(Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels), path)
