"""Training curves as a picture: bits/dim against steps and against training time, one colour per run.

Reads each run's ``metrics.csv`` (step, split, bits_per_dim, images_per_s, lr, seconds; ``seconds`` is the training
time, cumulative across resumes). Each logged train figure is one batch's, so train bits/dim is drawn faint, with its
moving average (over a 25th of the run's rows) solid on top; validation is a dashed line with dots. The y-axis
leaves out the first steps' far higher losses, so that the end of training can be read.
matplotlib is an optional extra: ``pip install 'pixelrnn[plot]'``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .errors import ConfigError, CorruptFileError, writing

INSTALL = "pip install 'pixelrnn[plot]'"


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float, float]]]:
    """The rows of a metrics.csv as {split: [(step, seconds, bits_per_dim), ...]}, sorted by step."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give a run folder written by `pixelrnn train` or a shipped name")
    curves: dict[str, list[tuple[int, float, float]]] = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                curves.setdefault(row["split"], []).append(
                    (int(row["step"]), float(row["seconds"] or "nan"), float(row["bits_per_dim"])))
    except (KeyError, ValueError, TypeError) as e:
        raise CorruptFileError(f"{path} is not a metrics.csv of pixelrnn train ({type(e).__name__}: {e})") from None
    return {split: sorted(rows) for split, rows in curves.items()}


def moving_average(values, window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: dict[str, str | Path], output: str | Path) -> Path:
    """Draw the curves of several runs into one PNG.

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
    output = Path(output)
    with writing(output):
        fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
