"""Training curves as a picture: bits/dim against steps and against training time, one colour per run.

Reads each run's ``metrics.csv`` (step, split, bits_per_dim, images_per_s, lr, seconds; ``seconds`` is the training
time, cumulative across resumes). Train bits/dim is drawn as a solid line, validation as a dashed one with dots.
matplotlib is an optional extra: ``pip install 'pixelrnn[plot]'``.
"""

from __future__ import annotations

import csv
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
    for k, (label, splits) in enumerate(curves.items()):
        colour = f"C{k % 10}"
        for split, style in (("train", dict(lw=1.2)), ("valid", dict(ls="--", marker="o", ms=3))):
            rows = splits.get(split, [])
            if not rows:
                continue
            steps, seconds, bpd = zip(*rows)
            by_step.plot(steps, bpd, color=colour, label=f"{label} ({split})", **style)
            by_time.plot([s / 60 for s in seconds], bpd, color=colour, **style)
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
