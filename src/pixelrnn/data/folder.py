"""``folder:PATH``: any directory of PNG/JPEG files as a data set of 256 levels, without labels.

Images are read in the mode they share (greyscale if all are, else RGB). Images of different sizes need
``image_size`` (``--image-size``): each is centre-cropped to a square and resized to that side. A relative PATH is
resolved against the current directory when the set is named: :func:`absolute_name` gives the name to store, so
that a run trained on ``folder:scratch/imgs`` can be evaluated from any other directory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .spec import ImageData

FOLDER_PREFIX = "folder:"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def absolute_name(name: str) -> str:
    """``folder:PATH`` with PATH made absolute (``~`` expanded); any other name unchanged."""
    if not name.startswith(FOLDER_PREFIX) or not name[len(FOLDER_PREFIX):]:
        return name
    return FOLDER_PREFIX + str(Path(name[len(FOLDER_PREFIX):]).expanduser().absolute())


def folder_split(files: list[Path], split: str) -> list[Path]:
    """Test and valid get 10% each (at least one image once there are 3), train the rest.

    Files are ordered by a hash of their name, so a file keeps its split when the folder is moved and mostly
    keeps it when files are added.
    """
    order = sorted(files, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    k = max(1, len(order) // 10) if len(order) >= 3 else 0
    part = {"test": order[:k], "valid": order[k: 2 * k], "train": order[2 * k:]}[split]
    return sorted(part)


def load_folder(spec: str, split: str, image_size: int | None) -> ImageData:
    if not spec[len(FOLDER_PREFIX):]:
        raise DataError("folder: needs a directory, as in folder:PATH")
    root = Path(spec[len(FOLDER_PREFIX):]).expanduser()
    if not root.is_dir():
        hint = "" if root.is_absolute() else f" (relative to {Path.cwd()}); give its absolute path with --data"
        raise DataError(f"{spec}: {root} is not a directory{hint}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise DataError(f"{spec}: --image-size must be a positive integer, not {image_size!r}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{spec}: no PNG or JPEG files ({', '.join(_IMAGE_SUFFIXES)}) in {root}")

    def read_error(path: Path, e: Exception) -> DataError:
        return DataError(f"{spec}: cannot read {path} as an image ({e})")

    # Opening reads only the header: cheap enough to learn every file's mode and size before decoding any.
    modes, sizes = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                modes.append(im.mode)
                sizes.append(im.size)
        except (OSError, Image.DecompressionBombError) as e:
            raise read_error(path, e) from None
    mode = "L" if all(m == "L" for m in modes) else "RGB"
    if image_size is None:
        if len(set(sizes)) > 1:
            examples = " and ".join(f"{w}x{h}" for w, h in sorted(set(sizes))[:2])
            raise DataError(f"{spec}: images differ in size ({examples}, ...); pass --image-size N (e.g. "
                            f"--image-size {min(min(s) for s in sizes)}) to resize them all to N x N")
        width, height = sizes[0]
    else:
        width = height = image_size

    chosen = folder_split(files, split)
    if not chosen:
        raise DataError(f"{spec}: {len(files)} image(s) are too few for a {split} split; add at least 3 images")
    arrays = []
    for path in chosen:
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if im.size != (width, height):
                    if width == height and im.width != im.height:
                        # Centre-crop to a square first: squeezing the whole picture would distort its shapes.
                        s = min(im.size)
                        left, top = (im.width - s) // 2, (im.height - s) // 2
                        im = im.crop((left, top, left + s, top + s))
                    im = im.resize((width, height), Image.Resampling.LANCZOS)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (OSError, Image.DecompressionBombError) as e:  # a truncated file fails only when decoded
            raise read_error(path, e) from None
    images = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    images = images[:, None] if mode == "L" else images.transpose(0, 3, 1, 2)
    return ImageData(spec, split, torch.from_numpy(np.ascontiguousarray(images)), 256, None, None)
