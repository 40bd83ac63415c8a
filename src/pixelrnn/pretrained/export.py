"""Turn a training run into a shipped model: measure it, store it, record what was measured.

``export(run, name)`` loads the run's latest checkpoint and

1. measures test bits/dim in fp32 over the whole test split with the weights as trained;
2. stores the weights in bf16 and measures the stored model as it loads (upcast to fp32) over the whole test split;
   where that moves bits/dim by more than ``BF16_TOLERANCE`` it stores them in fp32 instead, which loads back
   bit for bit as trained, so the first figure is the stored model's;
3. measures the stored model on the first ``FIRST_IMAGES`` test images, the figure the regression test checks;
4. draws the fixed-seed samples, copies the run's metrics.csv, and writes ``record.json`` last.

That is two passes over the test split, the cost of an export (a Row LSTM scores about 17 images/s on one core).

``benchmarks/export_pretrained.py RUN NAME`` is the command line of this module.
"""

from __future__ import annotations

import copy
import csv
import datetime
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..checkpoint import RunFolder, load_checkpoint, load_trainer_state, save_checkpoint, read_training_config
from ..data import load_dataset
from ..errors import ConfigError
from ..evaluate import evaluate
from . import METRICS, RECORD, SAMPLE_COUNT, SAMPLE_SEED, SAMPLES, draw_samples, load, pretrained_dir

BF16_TOLERANCE = 0.002  # bits/dim; the bound for storing weights in bf16
FIRST_IMAGES = 500
MAX_BYTES = 5_000_000


def machine() -> str:
    """A one-line description of this machine."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
    return f"{platform.node()}: {platform.machine()} {platform.system()}, {device}, torch {torch.__version__}"


def _training_seconds(metrics: Path) -> float | None:
    """The run's cumulative training time: the last ``seconds`` in its metrics.csv."""
    if not metrics.is_file():
        return None
    with open(metrics, newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f) if row.get("seconds")]
    return max(seconds, default=None)


def _store(folder: Path, model, trained: dict, bits, device: str):
    """Save ``model`` into ``folder`` in bf16 if that keeps its test bits/dim within ``BF16_TOLERANCE``, else in
    fp32; returns (the model as loaded back, the storage dtype, fp32 bits/dim, bf16 bits/dim)."""
    fp32 = bits(model)
    save_checkpoint(folder, copy.deepcopy(model).cpu().to(torch.bfloat16), extra_config={"train": trained})
    shipped = load(folder, device)
    bf16 = bits(shipped)  # what bf16 storage gives back on load
    storage = torch.bfloat16 if abs(bf16 - fp32) <= BF16_TOLERANCE else torch.float32
    if storage == torch.float32:
        save_checkpoint(folder, copy.deepcopy(model).cpu(), extra_config={"train": trained})
        shipped = load(folder, device)
    return shipped, storage, fp32, bf16


def export(run: str | Path, name: str, directory: str | Path | None = None, force: bool = False,
           command: str | None = None, machine_name: str | None = None, device: str = "cpu",
           batch_size: int | None = None, progress: bool = False, log=print) -> Path:
    """Write the shipped model ``name`` from the latest checkpoint of ``run``.

    Args:
        run: a run folder written by ``pixelrnn train``.
        name: the shipped name, e.g. ``"fashion-pixelcnn"``.
        directory: where shipped models live (default: the package's folder, see ``pretrained_dir``).
        force: replace an existing shipped model of that name.
        command: the training command to record (default: none recorded; the training config is stored anyway).
        machine_name: the machine the run trained on (default: this machine).
        device: where to evaluate.
        batch_size: images per forward pass when evaluating (default: by device, see ``evaluate``).
        progress: show progress bars.
        log: where to say what was measured.

    Returns:
        The shipped model's folder.
    """
    root = Path(directory) if directory else pretrained_dir()
    folder = root / name
    if folder.exists() and not force:
        raise ConfigError(f"{folder} exists; pass --force to replace the shipped model {name!r}")
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{name!r} is not a usable name; use letters, digits and dashes, e.g. fashion-pixelcnn")
    trained = {k: v for k, v in read_training_config(run).items() if k != "data_dir"}  # a path of the training machine
    data = load_dataset(trained["data"], "test", read_training_config(run).get("data_dir"),
                        image_size=trained.get("image_size"))
    model = load_checkpoint(run, device).float()

    def bits(m, limit=None) -> float:
        images = data.images[:limit]
        labels = None if data.labels is None else data.labels[:limit]
        return evaluate(m, images, labels, batch_size=batch_size, progress=progress)["bits_per_dim"]

    state = load_trainer_state(run) or {}
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        shipped, storage, fp32, bf16 = _store(tmp, model, trained, bits, device)
        log(f"test bits/dim over {len(data)} images: fp32 weights {fp32:.5f}, bf16 weights {bf16:.5f}: "
            f"storing {'bf16' if storage == torch.bfloat16 else 'fp32'}")
        first = min(FIRST_IMAGES, len(data))
        record = {
            "name": name, "data": trained["data"], "model": shipped.config["model"],
            "image_shape": list(shipped.image_shape), "levels": shipped.levels,
            "parameters": sum(p.numel() for p in shipped.parameters()),
            "test_images": len(data), "test_bits_per_dim": bf16 if storage == torch.bfloat16 else fp32,
            "first_images": first, "first_bits_per_dim": bits(shipped, first),
            "storage_dtype": str(storage).removeprefix("torch."),
            "test_bits_per_dim_by_storage": {"float32": fp32, "bfloat16": bf16},
            "samples": {"file": SAMPLES, "count": SAMPLE_COUNT, "seed": SAMPLE_SEED},
            "training": {"steps": state.get("step"), "seconds": _training_seconds(RunFolder(run).metrics),
                         "machine": machine_name or machine(), "command": command},
            "exported": {"pixelrnn": __version__, "torch": torch.__version__,
                         "date": datetime.date.today().isoformat()},
        }
        np.save(tmp / SAMPLES, draw_samples(shipped))
        if RunFolder(run).metrics.is_file():
            shutil.copyfile(RunFolder(run).metrics, tmp / METRICS)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    size = (folder / "model.safetensors").stat().st_size
    log(f"wrote {folder}: test bits/dim {record['test_bits_per_dim']:.5f} ({len(data)} images), "
        f"first {first}: {record['first_bits_per_dim']:.5f}; weights {size / 1e6:.2f} MB")
    if size > MAX_BYTES:
        log(f"warning: the weights take {size / 1e6:.1f} MB, more than the {MAX_BYTES / 1e6:.0f} MB a shipped "
            "model should")
    return folder
