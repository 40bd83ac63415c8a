"""The functions behind ``pixelrnn app``'s page, free of Gradio so that pytest can call them.

Each tab of the page is one function here: :func:`sample` (a grid of draws), :func:`complete` (the paper's figure 1
for a region a person painted), :func:`compress` and :func:`decompress` (:mod:`pixelrnn.codec` against PNG, WebP
lossless and, where ``cjxl`` is installed, JPEG XL lossless), :func:`bit_map` and :func:`distribution_at`
(:mod:`pixelrnn.explain`). Every mistake a user can make is a :class:`~pixelrnn.errors.PixelRNNError` with one line
that says what to do; the page shows that line.

Images travel between the page and these functions in two forms: the exact values, int64 [C, H, W], which the page
keeps on the server (a browser re-encodes what it shows), and a view for the eye, enlarged by an integer factor with
nearest neighbour (:func:`view_factor`) so that a person can paint on a 28x28 image. A painted mask comes back at the
view's size and is reduced to the image's pixels: a pixel is hidden if any of its block was painted.
"""

from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .. import codec, pictures, pretrained
from ..config import SEED_LIMIT
from ..errors import ConfigError, ImageError, PixelRNNError, write_atomic
from ..explain import explain
from ..explain_figures import render
from ..fitting import load_with_data
from ..images import read_image, save_images, to_uint8

INSTALL = "pip install 'pixelrnn[app]'"
MAX_SAMPLES = 64  # images a page asks for at once: beyond that the wait is long and the grid too large to see
MAX_COMPLETIONS = 8
MAX_FILES = 64  # images compressed at once
MAX_COMPRESSED_BYTES = 64 * 2**20  # a compressed file that a page decodes
VIEW_SIDE = 256  # pixels on an image's shorter side where a person paints or clicks on it
JXL_SECONDS = 30  # the longest a cjxl call may take


def model_names(first: str | None = None) -> list[str]:
    """The models a page offers: ``first`` (e.g. the run folder given on the command line), then the shipped ones."""
    return list(dict.fromkeys([*([first] if first else []), *pretrained.names()]))


@functools.lru_cache(maxsize=4)
def load_model(name: str, device: str = "cpu"):
    """The model of a shipped name or a run folder, in eval mode on ``device``; kept for the next request."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("choose a model: a shipped name or the path of a run folder")
    return pretrained.load(name.strip(), map_location=device).eval()


def describe(model) -> str:
    """One line about a model: its family, image shape, levels, and classes."""
    c, h, w = model.image_shape
    classes = model.settings.num_classes
    conditional = f", class-conditional ({classes} classes: give a class 0..{classes - 1})" if classes else ""
    return f"{model.name} of {c}x{h}x{w} images with {model.levels} levels{conditional}"


def whole(value, low: int, high: int, what: str) -> int:
    """A number from the page as a whole number in [low, high], or one line that says what is allowed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number == int(number) and low <= number <= high):
        raise ConfigError(f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return int(number)


def temperature_of(value) -> float:
    """The softmax temperature from the page: a finite number above 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"the temperature must be a number above 0, e.g. 1.0, not {value!r}")
    return number


def class_of(model, value) -> int | None:
    """The class to condition on: a valid label for a class-conditional model, None for any other."""
    classes = model.settings.num_classes
    if not classes:
        return None
    if value is None or value == "":
        raise ConfigError(f"this model is class-conditional: give a class from 0 to {classes - 1}")
    return whole(value, 0, classes - 1, "the class")


def generator(seed) -> torch.Generator:
    return torch.Generator().manual_seed(whole(seed, 0, SEED_LIMIT - 1, "the seed"))


def sample(model, count, temperature, seed, class_label=None) -> Image.Image:
    """Draw ``count`` images and return their grid (each image enlarged to at least 64 pixels a side)."""
    count = whole(count, 1, MAX_SAMPLES, "the number of samples")
    x = model.sample(count, temperature=temperature_of(temperature), generator=generator(seed),
                     y=class_of(model, class_label))
    return pictures.grid(x.cpu(), model.levels)


# Images in and out of the page

def view_factor(model) -> int:
    """The enlargement of an image where a person paints or clicks on it: at least :data:`VIEW_SIDE` pixels."""
    _, h, w = model.image_shape
    return max(1, math.ceil(VIEW_SIDE / min(h, w)))


def view(image: torch.Tensor, model) -> np.ndarray:
    """uint8 (H*f, W*f, 3), the image enlarged by :func:`view_factor` with nearest neighbour, in RGB."""
    factor = view_factor(model)
    pixels = to_uint8(image[None], model.levels)[0].repeat(factor, 0).repeat(factor, 1)
    return np.repeat(pixels, 3, axis=2) if pixels.shape[-1] == 1 else pixels


def read_upload(path, model) -> torch.Tensor:
    """An uploaded image file as int64 [C, H, W]; a file of another size, mode or levels is one line."""
    if not path:
        raise ImageError("upload an image first")
    return read_image(path, model.image_shape, model.levels)


@functools.lru_cache(maxsize=2)
def _test_split(name: str):
    return load_with_data(name, None, "test")[1]


def test_image(name: str, index) -> tuple[torch.Tensor, int | None]:
    """Image ``index`` of the test split of the data set the model ``name`` was trained on, and its label."""
    data = _test_split(name)
    k = whole(index, 0, len(data.images) - 1, f"the test image (of {len(data.images)})")
    return data.images[k].long(), None if data.labels is None else int(data.labels[k])


def hidden_pixels(layers: Sequence[np.ndarray] | None, model) -> torch.Tensor:
    """bool [H, W]: the pixels a person painted over on the enlarged view (any painted point in their block).

    Args:
        layers: the paint layers of the page's image editor, each (H*f, W*f, 4) with the paint in its alpha.
        model: the model, whose image shape and view factor the layers follow.
    """
    _, h, w = model.image_shape
    factor = view_factor(model)
    painted = np.zeros((h * factor, w * factor), dtype=bool)
    for layer in layers or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue  # a layer without alpha holds no paint
        if layer.shape[:2] != painted.shape:
            raise ImageError(f"the painted image is {layer.shape[1]}x{layer.shape[0]}, not the "
                             f"{painted.shape[1]}x{painted.shape[0]} shown; load the image again and paint on it")
        painted |= layer[..., 3] > 0
    hidden = torch.from_numpy(painted.reshape(h, factor, w, factor).any(axis=(1, 3)))
    if not hidden.any():
        raise ConfigError("paint over the region to hide first")
    return hidden


def complete(model, image: torch.Tensor, hidden: torch.Tensor, k, temperature, seed, class_label=None) -> Image.Image:
    """``k`` completions of ``image`` with the ``hidden`` pixels [H, W] drawn: the occluded image, the completions
    and the original in one row, as in the paper's figure 1."""
    if image is None:
        raise ConfigError("load an image first: upload one or pick a test image")
    k = whole(k, 1, MAX_COMPLETIONS, "the number of completions")
    known = (~hidden).expand(model.image_shape)
    drawn = model.complete(image[None].repeat(k, 1, 1, 1), known, temperature=temperature_of(temperature),
                           generator=generator(seed), y=class_of(model, class_label))
    return pictures.completion_picture(image[None], known, drawn.cpu()[None], model.levels)


# Explain

def bit_map(model, image: torch.Tensor, class_label=None) -> tuple[Image.Image, str]:
    """The figure of the image and its bit map, and one line with its bits/dim."""
    if image is None:
        raise ConfigError("load an image first: upload one or pick a test image")
    explanation = explain(model, image, class_of(model, class_label))
    return render(explanation), f"{explanation.total_bits_per_dim:.4f} bits/dim; click the image for a distribution"


def distribution_at(model, image: torch.Tensor, x: int, y: int, class_label=None) -> tuple[Image.Image, str]:
    """The distributions at the pixel clicked at (x, y) on the enlarged view, given the image's values before it."""
    if image is None:
        raise ConfigError("load an image first: upload one or pick a test image")
    factor = view_factor(model)
    row, column = int(y) // factor, int(x) // factor
    explanation = explain(model, image, class_of(model, class_label), pixels=[(row, column)])
    truth = explanation.true_values[0, 0].tolist()
    chances = ", ".join(f"{value} (p {explanation.probabilities[0, 0, c, value]:.3f})" for c, value in enumerate(truth))
    return render(explanation, maps=False), f"pixel {row},{column}: the image's value {chances}"


# Compress

def png_bytes(pixels: np.ndarray) -> int:
    return len(_encoded(pixels, "PNG", optimize=True))


def webp_bytes(pixels: np.ndarray) -> int:
    return len(_encoded(pixels, "WEBP", lossless=True, method=6))


def jxl_bytes(pixels: np.ndarray) -> int | None:
    """Bytes of the image as lossless JPEG XL (``cjxl -d 0``, Debian's libjxl-tools), or None without cjxl."""
    cjxl = shutil.which("cjxl")
    if cjxl is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pixelrnn-jxl-") as folder:
        source, target = Path(folder) / "image.png", Path(folder) / "image.jxl"
        write_atomic(source, _encoded(pixels, "PNG"))
        try:
            subprocess.run([cjxl, str(source), str(target), "-d", "0", "-e", "7"], check=True,
                           capture_output=True, timeout=JXL_SECONDS)
        except (OSError, subprocess.SubprocessError):
            return None
        return target.stat().st_size


def _encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


@dataclass(frozen=True)
class Compression:
    """What the Compress tab shows: a table of sizes per image, the compressed file and a summary line."""

    headers: list[str]
    rows: list[list]
    path: Path  # the compressed file, for download
    size: int  # its bytes
    summary: str

    def table(self) -> str:
        """The sizes as a Markdown table, bytes per file."""
        lines = [self.headers, ["---"] * len(self.headers), *self.rows]
        return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def _names(paths: list[Path]) -> list[str] | None:
    """The files' stems to store in the compressed file, or None where one is unsafe or two clash."""
    stems = [p.stem for p in paths]
    if any(codec.name_problem(s) for s in stems) or len({s.casefold() for s in stems}) < len(stems):
        return None
    return stems


def compress(model, paths: Sequence, out_dir: str | Path) -> Compression:
    """Compress uploaded images with the model into one file under ``out_dir``, and size it against PNG (Pillow,
    optimize), WebP lossless (method 6) and JPEG XL lossless (cjxl -d 0, where installed), one file per image."""
    paths = [Path(p) for p in paths or []]
    if not paths:
        raise ImageError("upload one or more PNG images first")
    if len(paths) > MAX_FILES:
        raise ConfigError(f"compress at most {MAX_FILES} images at once, not {len(paths)}")
    images = torch.stack([read_upload(p, model) for p in paths])
    data = codec.encode(model, images, names=_names(paths))
    folder = Path(tempfile.mkdtemp(prefix="compressed-", dir=out_dir))
    target = write_atomic(folder / "images.prnn", data)
    headers = ["image", "as uploaded", "PNG", "WebP lossless", "JPEG XL lossless"]
    rows, totals = [], [0, 0, 0, 0]
    for path, pixels in zip(paths, to_uint8(images, model.levels)):
        sizes = [path.stat().st_size, png_bytes(pixels), webp_bytes(pixels), jxl_bytes(pixels)]
        rows.append([path.name, *["not available" if s is None else s for s in sizes]])
        totals = [None if t is None or s is None else t + s for t, s in zip(totals, sizes)]
    dims = images.numel()

    def bpd(size):  # a file's bits per value of the images it holds
        return "" if size is None else f" ({8 * size / dims:.3f} bits/dim)"

    rows.append([f"all {len(paths)}", *["not available" if t is None else t for t in totals]])
    others = ", ".join(f"{name} {t} bytes{bpd(t)}" for name, t in zip(headers[2:], totals[1:]) if t is not None)
    summary = (f"pixelrnn: {len(data)} bytes{bpd(len(data))} for {len(paths)} image{'s' if len(paths) > 1 else ''}"
               f"; {others}")
    return Compression(headers, rows, target, len(data), summary)


def decompress(model, path, out_dir: str | Path) -> tuple[Image.Image, Path, str]:
    """Decode a file written by :func:`compress` (or ``pixelrnn compress``) with the same model.

    Returns:
        The decoded images as a grid, a zip of their PNGs under ``out_dir``, and a summary line.
    """
    if not path:
        raise ImageError("upload a .prnn file written by pixelrnn compress first")
    path = Path(path)
    if path.stat().st_size > MAX_COMPRESSED_BYTES:
        raise codec.CodecError(f"{path.name} is larger than a page decodes ({MAX_COMPRESSED_BYTES // 2**20} MB); "
                               "use pixelrnn decompress")
    images, names = codec.decode_named(model, path.read_bytes())
    folder = Path(tempfile.mkdtemp(prefix="decompressed-", dir=out_dir))
    names = names or [f"image-{k:05d}" for k in range(len(images))]
    written = save_images(images, model.levels, [folder / f"{name}.png" for name in names])
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        for file in written:
            archive.write(file, file.name)
    archive = write_atomic(folder / "images.zip", bundle.getvalue())
    return pictures.grid(images, model.levels), archive, f"decoded {len(images)} image{'s' if len(images) > 1 else ''}"


def user_error(error: Exception) -> str | None:
    """The one line to show for an error a user caused, or None for a bug."""
    return str(error).splitlines()[0] if isinstance(error, PixelRNNError) else None
