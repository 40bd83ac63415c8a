"""Training curves as a picture: bits/dim against steps and against training time, one colour per run.

Reads each run's ``metrics.csv`` (step, split, bits_per_dim, images_per_s, lr, seconds; ``seconds`` is the training
time, cumulative across resumes). Each logged train figure is one batch's, so train bits/dim is drawn faint, with its
moving average (over a 25th of the run's rows) solid on top; validation is a dashed line with dots. The y-axis
leaves out the first steps' far higher losses, so that the end of training can be read.
matplotlib is an optional extra: ``pip install 'pixelrnn[plot]'``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image

from .errors import ConfigError, CorruptFileError
from .images import image_format, write_encoded

INSTALL = "pip install 'pixelrnn[plot]'"
COLUMNS = ("step", "split", "bits_per_dim")  # what a curve needs; ``seconds`` too where the file has it
SPLITS = ("train", "valid")
# A metrics.csv row is under 100 bytes: this holds millions of logged steps, and keeps a foreign file from filling
# memory with rows.
MAX_BYTES = 256 * 2**20


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float, float]]]:
    """The rows of a metrics.csv as {split: [(step, seconds, bits_per_dim), ...]}, sorted by step.

    Raises:
        ConfigError: the file does not exist, or holds no rows yet (nothing to plot).
        CorruptFileError: it is not a metrics.csv written by ``pixelrnn train`` (empty, text, binary, a bad number);
            the message names the file and the line.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give a run folder written by `pixelrnn train` or a shipped name")
    if not path.is_file():
        raise CorruptFileError(f"{path} is not a regular file; give a run folder or its metrics.csv")
    if (size := path.stat().st_size) > MAX_BYTES:
        raise CorruptFileError(f"{path} is {size / 2**20:,.0f} MiB, larger than a metrics.csv of pixelrnn train "
                               f"(at most {MAX_BYTES // 2**20} MiB); give a run's own file")
    curves: dict[str, list[tuple[int, float, float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(_text_lines(f))
            fields = reader.fieldnames or []
            if not fields:
                raise ValueError("it is empty")
            if missing := [c for c in COLUMNS if c not in fields]:
                raise ValueError(f"its first line has no {', '.join(missing)} column")
            for row in reader:
                try:
                    split, step, seconds, bpd = _parse(row, len(fields))
                except ValueError as e:
                    raise ValueError(f"line {reader.line_num}: {e}") from None
                curves.setdefault(split, []).append((step, seconds, bpd))
    except (ValueError, csv.Error, UnicodeDecodeError) as e:
        if isinstance(e, UnicodeDecodeError):
            why = "it is not UTF-8 text"
        else:  # csv's own errors (a field over its limit) say no line; every other one does
            why = (f"line {reader.line_num + 1}: " if isinstance(e, csv.Error) else "") + " ".join(str(e).split())
        raise CorruptFileError(f"{path} is not a metrics.csv of pixelrnn train ({why[:160]}); give a run folder "
                               f"or its metrics.csv") from None
    except OSError as e:
        raise CorruptFileError(f"{path} cannot be read ({e.strerror or type(e).__name__})") from None
    if not curves:
        raise ConfigError(f"{path} holds no rows yet: nothing to plot; a run logs its first row after --log-every "
                          f"steps")
    return {split: sorted(rows) for split, rows in curves.items()}


def _text_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a text file; a NUL, which no text file holds (and csv would take as a character), is refused."""
    for number, line in enumerate(lines, 1):
        if "\0" in line:
            raise ValueError(f"line {number} holds NUL bytes: binary data, not text")
        yield line


def _parse(row: dict, columns: int) -> tuple[str, int, float, float]:
    """One row's split, step, seconds (nan where the file has no such column or the row leaves it empty) and
    bits/dim."""
    if None in row or None in row.values():  # more fields than the header names, or fewer
        raise ValueError(f"the row does not have the {columns} fields of the first line")
    if row["split"] not in SPLITS:
        raise ValueError(f"the split is {row['split'][:20]!r}, not train or valid")
    step = int(row["step"])
    if step < 0:
        raise ValueError(f"the step is {step}")
    return row["split"], step, float(row.get("seconds") or "nan"), float(row["bits_per_dim"])


def moving_average(values, window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: dict[str, str | Path], output: str | Path) -> Path:
    """Draw the curves of several runs into one picture, in the format the name's suffix says (PNG: ``.png``).

    Args:
        runs: {label: metrics.csv path}, in legend order.
        output: the image to write.

    Returns:
        The image's path.
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(f"pixelrnn plot needs matplotlib; install it with: {INSTALL}") from None
    matplotlib.use("Agg")  # files only; no window, no display needed
    from matplotlib import pyplot as plt

    image_format(output)  # a name no format fits is refused before anything is read or drawn
    curves = {label: read_metrics(path) for label, path in runs.items()}
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    shown = []  # the values the y-axis must hold
    for k, (label, splits) in enumerate(curves.items()):
        colour = f"C{k % 10}"
        rows = splits.get("train", [])
        if rows:
            steps, seconds, bpd = zip(*rows)
            smooth = moving_average(bpd, max(1, len(bpd) // 25))
            for ax, x in ((by_step, steps), (by_time, [s / 60 for s in seconds])):
                ax.plot(x, bpd, color=colour, lw=0.6, alpha=0.25)
                ax.plot(x, smooth, color=colour, lw=1.4, label=f"{label} (train, moving average)" if ax is by_step
                        else None)
            shown += smooth[len(smooth) // 10:]
        rows = splits.get("valid", [])
        if rows:
            steps, seconds, bpd = zip(*rows)
            for ax, x in ((by_step, steps), (by_time, [s / 60 for s in seconds])):
                ax.plot(x, bpd, color=colour, ls="--", marker="o", ms=3, zorder=3,
                        label=f"{label} (valid)" if ax is by_step else None)
            shown += bpd
    shown = [v for v in shown if math.isfinite(v)]  # a diverged run logs nan or inf; the axis cannot hold them
    if shown:
        low, high = min(shown), max(shown)
        by_step.set_ylim(low - 0.1 * (high - low) - 0.01, high + 0.1 * (high - low) + 0.01)
    by_step.set(xlabel="step", ylabel="bits/dim", title="against steps")
    by_time.set(xlabel="training time (minutes)", title="against training time")
    for ax in (by_step, by_time):
        ax.grid(alpha=0.3)
    by_step.legend(fontsize="small")
    fig.tight_layout()
    # Drawn in memory, then written atomically: a failure (a full disk) leaves the old file as it was, and no
    # half-written picture under the final name.
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=120)
    finally:
        plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as picture:
        return write_encoded(picture.convert("RGB"), output)
