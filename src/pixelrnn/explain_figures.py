"""Figures of an :class:`~pixelrnn.explain.Explanation`: bit maps with a colour bar, and predictive distributions.

One row per image: the image (the chosen pixels ringed), its bit map (-log2 p of each pixel, its channels' terms
added, on one colour scale for all rows, with a colour bar in bits), for a colour image the map of each channel, and
at each chosen pixel the K-way distribution of each channel given the image's values before it, the image's own
value marked, as in the softmax figure of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016).
matplotlib is an optional extra: ``pip install 'pixelrnn[plot]'``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ConfigError
from .explain import Explanation
from .images import image_format, to_uint8, write_encoded

INSTALL = "pip install 'pixelrnn[plot]'"
CHANNELS = {1: ("value",), 3: ("R", "G", "B")}
CHANNEL_COLOURS = {1: ("0.25",), 3: ("tab:red", "tab:green", "tab:blue")}
MAP_COLOURS = "inferno"  # dark where the model was sure, bright where the image surprised it
MAX_ROWS = 64  # images in one figure: beyond that it is too tall to read


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or a ConfigError that names the extra to install."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(f"drawing bit maps and distributions needs matplotlib; install it with: {INSTALL}") from None
    matplotlib.use("Agg")  # files only; no window, no display needed
    from matplotlib import pyplot as plt
    return plt


def check_rows(count: int) -> None:
    """Refuse a figure of more images than :data:`MAX_ROWS`, before any work is done."""
    if count > MAX_ROWS:
        raise ConfigError(f"a figure shows one row per image, at most {MAX_ROWS}; give fewer images (--limit)")


def _show_image(ax, explanation: Explanation, n: int, name: str) -> None:
    pixels = to_uint8(explanation.images[n:n + 1], explanation.levels)[0]  # (H, W, C)
    if pixels.shape[-1] == 1:
        ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(pixels, interpolation="nearest")
    for k, (row, column) in enumerate(explanation.pixels):
        ax.plot(column, row, "o", ms=9, mfc="none", mec="tab:cyan", mew=1.6)
        ax.annotate(str(k + 1), (column, row), xytext=(5, 5), textcoords="offset points", color="tab:cyan",
                    fontsize=8, weight="bold")
    ax.set_title(f"{name}\n{explanation.bits_per_dim[n]:.3f} bits/dim", fontsize=9)


def _show_map(fig, ax, values: np.ndarray, high: float, title: str) -> None:
    shown = ax.imshow(values, cmap=MAP_COLOURS, vmin=0, vmax=high, interpolation="nearest")
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("bits", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _show_distribution(ax, explanation: Explanation, n: int, p: int, marked: str) -> None:
    probabilities = explanation.probabilities[n, p].numpy()  # (C, K)
    truth = explanation.true_values[n, p].tolist()
    channels = len(probabilities)
    values = np.arange(explanation.levels)
    lines = []
    for c, (name, colour) in enumerate(zip(CHANNELS[channels], CHANNEL_COLOURS[channels])):
        if channels == 1:
            ax.bar(values, probabilities[c], width=1.0, color=colour)
        else:
            ax.step(values, probabilities[c], where="mid", color=colour, lw=1)
        ax.axvline(truth[c], color=colour if channels > 1 else "tab:red", ls="--", lw=1)
        bits = -np.log2(max(probabilities[c, truth[c]], 1e-300))
        lines.append(f"{name} {truth[c]}: p {probabilities[c, truth[c]]:.3f}, {bits:.2f} bits")
    row, column = explanation.pixels[p]
    at = "" if explanation.temperature == 1.0 else f", temperature {explanation.temperature:g}"
    ax.set_title(f"{p + 1}: pixel {row},{column}{at}", fontsize=9)
    margin = max(1.0, explanation.levels / 50)  # so that a spike at 0 or K - 1 is not hidden by the frame
    ax.set_xlim(-margin, explanation.levels - 1 + margin)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"value (dashed: {marked})", fontsize=8)
    ax.set_ylabel("probability", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.text(0.98, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})


def figure(explanation: Explanation, maps: bool = True, names=None, marked: str = "the image's"):
    """The matplotlib figure of an explanation (see the module docstring).

    Args:
        explanation: what :func:`pixelrnn.explain.explain` returned.
        maps: draw the bit maps (False: the images and distributions only).
        names: a title per image (default: "image 0", "image 1", ...).
        marked: what the dashed line in a distribution marks.
    """
    plt = pyplot()
    count, channels = explanation.images.shape[:2]
    check_rows(count)
    map_columns = (1 + (channels if channels > 1 else 0)) if maps else 0
    columns = 1 + map_columns + len(explanation.pixels)
    widths = [1.0] * (1 + map_columns) + [1.6] * len(explanation.pixels)
    fig, axes = plt.subplots(count, columns, figsize=(2.6 * sum(widths), 2.5 * count), squeeze=False,
                             gridspec_kw={"width_ratios": widths}, constrained_layout=True)
    engine = fig.get_layout_engine() if hasattr(fig, "get_layout_engine") else None
    if engine is not None:  # room between a colour bar's label and the next panel's axis label
        engine.set(wspace=0.06)
    pixel_bits = explanation.pixel_bits.numpy()
    value_bits = explanation.bits.numpy()
    for n in range(count):
        row = list(axes[n])
        _show_image(row[0], explanation, n, names[n] if names else f"image {n}")
        if maps:
            _show_map(fig, row[1], pixel_bits[n], float(pixel_bits.max()) or 1.0, "bits per pixel")
            if channels > 1:
                for c, name in enumerate(CHANNELS[channels]):
                    _show_map(fig, row[2 + c], value_bits[n, c], float(value_bits.max()) or 1.0, f"bits of {name}")
        for ax in row[:1 + map_columns]:
            ax.set_xticks([])
            ax.set_yticks([])
        for p in range(len(explanation.pixels)):
            _show_distribution(row[1 + map_columns + p], explanation, n, p, marked)
    fig.suptitle(f"{count} image{'s' if count > 1 else ''}: {explanation.total_bits_per_dim:.4f} bits/dim\n"
                 f"bits: -log2 p of each value given the values before it", fontsize=9)
    return fig


def render(explanation: Explanation, maps: bool = True, names=None, marked: str = "the image's",
           dpi: int = 110) -> Image.Image:
    """The figure (see :func:`figure`) as an RGB picture, for a file or a web page."""
    plt = pyplot()
    fig = figure(explanation, maps=maps, names=names, marked=marked)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as picture:
        return picture.convert("RGB")


def save_figure(explanation: Explanation, path: str | Path, maps: bool = True, names=None,
                marked: str = "the image's") -> Path:
    """Draw the figure (see :func:`figure`) into ``path``, in the format its suffix names, written atomically."""
    image_format(path)  # a bad name is refused before the figure is drawn
    return write_encoded(render(explanation, maps=maps, names=names, marked=marked), path)
