"""Image files in and out: the tensor a model takes from PNG/JPEG files, and lossless PNGs back.

Values in [0, K) are written as grey or colour levels spread over 0..255, so a 2-level or 17-level model's images are
as visible as an 8-bit one's. Files meant for a program (:func:`save_image`, :func:`save_images`) keep the image's
own size: they are lossless output, and :func:`read_image` / :func:`read_images` read them back to exactly the
values written. Pictures meant for a person (grids, completion panels) are :mod:`pixelrnn.pictures`.

Every image the package opens goes through :func:`open_image`, which turns PIL's failures (an unreadable or
truncated file, or one that declares more pixels than PIL's decompression-bomb limit) into one
:class:`~pixelrnn.errors.ImageError` line. Every image it writes is encoded in memory and then written atomically,
so a failed write never leaves a half-written picture where a good one was.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

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
    if Path(path).exists() and not Path(path).is_file() and not Path(path).is_dir():
        # A FIFO or a device: reading one would wait for a writer, or never end (/dev/zero).
        raise ImageError(f"{path} is not a regular file; give an image file")
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


def write_encoded(image: Image.Image, path: str | Path) -> Path:
    """Encode ``image`` in memory, in the format ``path``'s suffix names, then write it atomically."""
    buffer = io.BytesIO()
    image.save(buffer, image_format(path))
    return write_atomic(path, buffer.getvalue())


def to_uint8(x: torch.Tensor, levels: int) -> np.ndarray:
    """int [N, C, H, W] in [0, levels) -> uint8 [N, H, W, C] in [0, 255]."""
    scaled = (x.detach().cpu().double() * (255.0 / (levels - 1))).round().clamp(0, 255)
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).numpy()


# The shorter side, in pixels, that a picture for a person gives each image: smaller images are enlarged to it.
def _lossless_pixels(picture: Image.Image, channels: int, path) -> np.ndarray:
    """The picture's 8-bit values as (H, W) or (H, W, 3), converted only where nothing is lost, else an ImageError.

    A palette becomes its colours (grey ones only, for a grey model); bilevel becomes 0 and 255; an alpha channel
    that is fully opaque is dropped, since it holds nothing. A 16-bit image, a colour image for a grey model, or
    an alpha channel with any transparency would lose information, and is refused with what the model can code.
    """
    mode = picture.mode
    wants = "8-bit greyscale (L)" if channels == 1 else "8-bit RGB"
    article = "an" if mode[0] in "AEFHILMNORSX" else "a"  # "an RGB image", "an L image", "a CMYK image"
    if mode.startswith("I") or mode == "F":
        raise ImageError(f"{path} is {article} {mode} image ({'16' if ';16' in mode else '32'}-bit values), but "
                         f"the model codes {wants} images: 8-bit values would lose its low bits")
    if mode in ("P", "PA", "LA", "RGBA"):  # resolve a palette and check what the alpha holds
        picture = picture.convert("RGBA" if mode != "LA" else "LA")
        alpha = np.asarray(picture)[..., -1]
        if (alpha != 255).any():
            raise ImageError(f"{path} has transparent pixels, which the model cannot code ({wants} only); "
                             "flatten it onto a background first if the transparency does not matter")
        picture = picture.convert("RGB" if picture.mode == "RGBA" else "L")
    elif mode == "1":
        picture = picture.convert("L")  # 0 and 255, exactly
    if picture.mode == "RGB" and channels == 1:
        rgb = np.asarray(picture)
        if not ((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])).all():
            raise ImageError(f"{path} is a colour image, but the model codes {wants} images")
        return rgb[..., 0].copy()
    if picture.mode != ("L" if channels == 1 else "RGB"):
        raise ImageError(f"{path} is {article} {mode} image, but the model codes {wants} images "
                         f"({channels} channel{'s' if channels > 1 else ''})")
    return np.asarray(picture).copy()


def has_alpha(path: str | Path) -> bool:
    """Whether an image file carries an alpha channel (RGBA, LA, PA, or a palette with transparency). An image that
    :func:`read_image` accepted has a fully opaque one: :func:`save_image` can write it back (``alpha=True``)."""
    with open_image(path) as picture:
        return picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info)


def read_image(path: str | Path, image_shape: tuple[int, int, int], levels: int) -> torch.Tensor:
    """Read a PNG/JPEG as int64 [C, H, W] values in [0, levels), checking it against a model's image shape.

    8-bit values map to K levels as :func:`to_uint8` wrote them (v -> round(v * (K - 1) / 255)); values that do not
    lie on one of the K levels are an error, since a lossless codec must not round them silently. For the same
    reason a file is converted only where nothing is lost (a palette, bilevel, a fully opaque alpha channel), and a
    16-bit, transparent or (for a grey model) colour image is refused.

    Args:
        path: the image file.
        image_shape: (C, H, W) that the file must have (C = 1: greyscale, 3: RGB).
        levels: the number of levels K.

    Returns:
        int64 [C, H, W] values in [0, levels).

    Raises:
        ImageError: the file cannot be read, has another size or number of channels, or values off the K levels;
            the message names the file.
    """
    c, h, w = image_shape
    with open_image(path) as picture:
        pixels = _lossless_pixels(picture, c, path)
    if pixels.shape[:2] != (h, w):
        raise ImageError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]}, but the model codes {w}x{h} images")
    values = torch.from_numpy(pixels.reshape(h, w, c)).permute(2, 0, 1).long()
    if levels == 256:
        return values
    scaled = torch.round(values.double() * (levels - 1) / 255).long()
    if not np.array_equal(to_uint8(scaled[None], levels)[0], pixels.reshape(h, w, c)):
        raise ImageError(f"{path} has 8-bit values that are not on the model's {levels} levels")
    return scaled


def save_image(x: torch.Tensor, levels: int, path: str | Path, alpha: bool = False) -> Path:
    """Write one image at its own size, not enlarged, so that :func:`read_image` gives back exactly ``x``.

    Args:
        x: int [C, H, W] values in [0, levels).
        levels: the number of levels K.
        path: the file to write; give it a lossless type (.png).
        alpha: add a fully opaque alpha channel (LA or RGBA), as the image had when it was compressed.

    Returns:
        ``path``.

    Raises:
        ConfigError: ``x`` is not an integer [C, H, W] image (C = 1 or 3) with values in [0, levels).
    """
    check_values(x, levels, single=True)
    pixels = to_uint8(x[None], levels)[0]
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    if alpha:
        picture.putalpha(255)  # L -> LA, RGB -> RGBA
    return write_encoded(picture, path)


def check_values(x: torch.Tensor, levels: int, single: bool = False) -> None:
    """Refuse images that a file cannot hold exactly: to_uint8 would round fractions and clip values off [0, K).

    Args:
        x: the images to be written, [N, C, H, W].
        levels: the number of levels K.
        single: ``x`` is one image, [C, H, W].

    Raises:
        ConfigError: ``x`` is not an integer tensor of that shape with C = 1 or 3 and values in [0, levels).
    """
    layout = "[C, H, W]" if single else "[N, C, H, W]"
    if not isinstance(x, torch.Tensor) or x.dim() != 4 - single or x.shape[-3] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"images to write must be a tensor {layout} with C = 1 or 3 channels, not {shape}")
    if x.dtype.is_floating_point or x.dtype.is_complex:
        raise ConfigError(f"images to write must hold integer values in [0, {levels}), not {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() >= levels):
        raise ConfigError(f"image values must lie in [0, {levels}) to be written with {levels} levels, not "
                          f"[{x.min().item()}, {x.max().item()}]")


def read_images(paths: str | Path | Iterable[str | Path], image_shape: tuple[int, int, int],
                levels: int) -> torch.Tensor:
    """Read image files into the tensor a model takes, checking each as :func:`read_image` does.

    Args:
        paths: image files (PNG, or JPEG where its values lie on the K levels), or one file.
        image_shape: (C, H, W) that every file must have: ``model.image_shape``.
        levels: the number of levels K: ``model.levels``.

    Returns:
        int64 [N, C, H, W] values in [0, levels), one image per path, in the order given.

    Raises:
        ImageError: no paths, or a file that cannot be read or does not fit; the message names the file.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ImageError("there are no images to read; give one or more image files")
    return torch.stack([read_image(path, image_shape, levels) for path in paths])


def save_images(x: torch.Tensor, levels: int, out: str | Path | Sequence[str | Path]) -> list[Path]:
    """Write each image as its own PNG at its own size, the inverse of :func:`read_images`.

    Args:
        x: int [N, C, H, W] values in [0, levels) (e.g. ``model.sample(n)``).
        levels: the number of levels K: ``model.levels``.
        out: a folder, which receives ``image-00000.png``, ``image-00001.png``, ... (created if missing; files of
            those names are replaced), or one file path per image.

    Returns:
        The paths written, in the order of ``x``.

    Raises:
        ConfigError: ``x`` is not [N, C, H, W] of values in [0, levels), or the paths do not number N.
        OutputError: a file cannot be written.
    """
    check_values(x, levels)
    if isinstance(out, (str, os.PathLike)):
        if Path(out).is_file():
            raise OutputError(f"{out} is a file; give a folder for the images, or one file path per image")
        paths = [Path(out) / f"image-{k:05d}.png" for k in range(len(x))]
    else:
        paths = [Path(path) for path in out]
        if len(paths) != len(x):
            raise ConfigError(f"give one path per image: {len(x)} images, {len(paths)} paths")
    for path in paths:
        image_format(path)  # every name is checked before the first file is written
    return [save_image(image, levels, path) for image, path in zip(x, paths)]
