"""Checkpoints shipped with the package, usable by name wherever a run folder is expected.

Each shipped model is one folder here, named after the model (``fashion-pixelcnn``), installed with the package::

    pretrained/NAME/model.safetensors   the weights (fp32, or bf16 where that moved test bits/dim by <= 0.002),
                                        with the model config in the file's metadata: an ordinary checkpoint folder
    pretrained/NAME/config.json         the model and training config, as in any checkpoint
    pretrained/NAME/record.json         what was measured when it was exported (see ``export.py``): data set,
                                        test bits/dim on the whole test split and on its first images, training
                                        steps, time, machine and command, storage dtype and its effect
    pretrained/NAME/samples.npy         4 images drawn with a fixed seed: a model whose behaviour changed draws others
    pretrained/NAME/metrics.csv         the training run's curves, for ``pixelrnn plot NAME``

Name resolution, the same for every command: a path that exists is always a path; a shipped name is used only
when no such path exists; ``pretrained:NAME`` forces the shipped model. The folder can be moved for tests with the
environment variable ``PIXELRNN_PRETRAINED_DIR``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import RunFolder, load_checkpoint
from ..errors import CheckpointError
from ..models import AutoregressiveModel

PREFIX = "pretrained:"
RECORD, SAMPLES, METRICS = "record.json", "samples.npy", "metrics.csv"
SAMPLE_SEED, SAMPLE_COUNT = 0, 4
ENV = "PIXELRNN_PRETRAINED_DIR"


def pretrained_dir() -> Path:
    """Where the shipped models live: ``$PIXELRNN_PRETRAINED_DIR`` if set, else this package's folder."""
    return Path(os.environ.get(ENV) or Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Pretrained:
    """One shipped model: its folder and what was recorded when it was exported."""

    name: str
    folder: Path

    @property
    def record(self) -> dict:
        return json.loads((self.folder / RECORD).read_text())

    @property
    def samples(self) -> Path:
        return self.folder / SAMPLES

    @property
    def metrics(self) -> Path:
        return self.folder / METRICS

    def size(self) -> int:
        """Bytes on disk, all files together."""
        return sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())


def names(directory: str | Path | None = None) -> list[str]:
    """The names of the shipped models, sorted."""
    root = Path(directory) if directory else pretrained_dir()
    return sorted(p.name for p in root.iterdir() if (p / RECORD).is_file()) if root.is_dir() else []


def shipped(name: str, directory: str | Path | None = None) -> Pretrained:
    """The shipped model called ``name``; a CheckpointError listing the shipped names if there is none."""
    root = Path(directory) if directory else pretrained_dir()
    if name in names(root):
        return Pretrained(name, root / name)
    known = ", ".join(names(root)) or "none shipped yet"
    raise CheckpointError(f"no checkpoint at {name}: no run folder and no shipped model of that name (shipped: "
                          f"{known}); give a run folder written by `pixelrnn train --out`, or a name `pixelrnn models` "
                          "lists")


def locate(run_or_name: str | Path) -> Path | Pretrained:
    """The one resolver: a path that exists, else the shipped model of that name (``pretrained:NAME`` forces it)."""
    text = str(run_or_name)
    if text.startswith(PREFIX):
        return shipped(text[len(PREFIX):])
    if Path(text).exists() or os.sep in text:  # something that looks like a path is reported as a missing path
        return Path(text)
    return shipped(text)


def resolve(run_or_name: str | Path) -> Path:
    """The checkpoint path (run folder or checkpoint folder) that a run folder or a shipped name stands for."""
    where = locate(run_or_name)
    return where.folder if isinstance(where, Pretrained) else where


def metrics_file(run_or_name: str | Path) -> Path:
    """The metrics.csv of a run folder (or the file itself), or the one stored with a shipped model."""
    where = locate(run_or_name)
    if isinstance(where, Pretrained):
        return where.metrics
    if where.exists() and not where.is_dir():  # a file of any kind (a FIFO, a device): plot says what it is
        return where
    return RunFolder(where).metrics


def load(run_or_name: str | Path, map_location: str | torch.device = "cpu", verify: bool = True) -> AutoregressiveModel:
    """The model of a run folder, checkpoint or shipped name; weights stored in bf16 are upcast to fp32.

    ``verify=False`` skips the check of the weights against their recorded sha256 (``--no-verify``).
    """
    model = load_checkpoint(resolve(run_or_name), map_location, verify=verify)
    return model.float() if model.dtype == torch.bfloat16 else model


def load_pretrained(name: str, map_location: str | torch.device = "cpu") -> AutoregressiveModel:
    """A model shipped with the package, in fp32 and eval mode (``pixelrnn models`` lists the names).

    Args:
        name: a shipped model's name, e.g. ``"fashion-pixelcnn"`` (a ``pretrained:`` prefix is accepted).
        map_location: device for the weights.

    Returns:
        The model, fp32, in eval mode, on ``map_location``.

    Raises:
        CheckpointError: no shipped model of that name (the message lists them), or its files are damaged.
    """
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return load(PREFIX + name, map_location)


@torch.no_grad()
def draw_samples(model: AutoregressiveModel) -> np.ndarray:
    """The images stored beside a shipped model: 4 drawn on the CPU with a fixed seed (classes 0-3 if conditional).

    Returns:
        uint8 [4, C, H, W].
    """
    model = model.cpu()
    y = torch.arange(SAMPLE_COUNT) % model.settings.num_classes if model.settings.num_classes else None
    x = model.sample(SAMPLE_COUNT, generator=torch.Generator().manual_seed(SAMPLE_SEED), y=y)
    return x.to(torch.uint8).numpy()
