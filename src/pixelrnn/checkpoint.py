"""Checkpoints that describe themselves and never run code when loaded.

A checkpoint is a directory:

- ``model.safetensors``: the weights, with the model's config (JSON) and a sha256 of the weights in the file's
  metadata, so that a single file is enough to rebuild the model and to tell whether it was damaged;
- ``config.json``: the same config, plus whatever the caller adds (the training config), for people to read;
- ``trainer.pt`` (optional): optimizer, step and RNG state for an exact resume, loaded with ``weights_only=True``.

Every checkpoint is written into a temporary directory first and moved into place by rename, so an interrupted
save never leaves a half-written checkpoint where a good one was; a failed save removes its temporary files, and
the ones a killed process left behind are removed when the run is resumed (:meth:`RunFolder.clean`).

A training run is a folder, laid out by ``RunFolder``::

    RUN/train_config.json               the run's settings (what ``--resume`` continues with)
    RUN/metrics.csv                     step, split, bits_per_dim, images_per_s, lr, seconds
    RUN/tensorboard/                    TensorBoard events, when TensorBoard is installed
    RUN/checkpoints/step-000001500/     a checkpoint; only the newest two are kept
    RUN/checkpoints/latest              a text file naming the newest one, replaced atomically
    RUN/eval-DATA-SPLIT.json            what ``pixelrnn evaluate`` measured
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import TrainConfig, field_types, typed
from .errors import CheckpointError, ConfigError, UnverifiedWeights, write_atomic, writing
from .models import AutoregressiveModel, build_from_config, upgrade_config
from .models.registry import parameter_count, state_shapes

FORMAT = "pixelrnn-checkpoint"
VERSION = "1"
WEIGHTS, CONFIG, TRAINER = "model.safetensors", "config.json", "trainer.pt"
RUN_CONFIG, LATEST = "train_config.json", "latest"
KEEP = 2  # checkpoints a run keeps: the newest, and one before it in case the newest is damaged
TEMPORARY = (".*.tmp*", ".*.old-*")  # what an interrupted save leaves in a checkpoints folder


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """A sha256 of named tensors: their names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mkdtemp(prefix: str, parent: Path) -> Path:
    """A new temporary folder in ``parent``, with the user's umask (``tempfile.mkdtemp`` makes it 0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    folder.chmod(0o777 & ~_umask())
    return folder


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, model: AutoregressiveModel, trainer_state: dict | None = None,
                    extra_config: dict | None = None) -> Path:
    """Write ``model`` (and optionally the trainer's state) to the directory ``path``, atomically.

    Args:
        path: the checkpoint directory; an existing checkpoint there is replaced only once the new one is complete.
        model: the model to save.
        trainer_state: a dict of tensors and plain values (optimizer state, step, RNG states) for resuming.
        extra_config: JSON-able values stored beside the model config in config.json (e.g. the training config).

    Returns:
        The checkpoint directory.
    """
    path = Path(path)
    with writing(path):
        return _save(path, model, trainer_state, extra_config)


def _save(path: Path, model: AutoregressiveModel, trainer_state: dict | None, extra_config: dict | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _mkdtemp(f".{path.name}.tmp-", path.parent)
    try:
        # safetensors refuses tensors that share memory or are not contiguous; clone what it stores.
        weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}  # device-free
        metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(model.config),
                    "sha256": weights_sha256(weights)}
        save_file(weights, str(tmp / WEIGHTS), metadata=metadata)
        (tmp / WEIGHTS).chmod(0o666 & ~_umask())  # as the other files of the checkpoint: safetensors makes it 0600
        (tmp / CONFIG).write_text(json.dumps({"model": model.config, **(extra_config or {})}, indent=2) + "\n")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER)
        for f in tmp.iterdir():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if path.exists():
            old = _mkdtemp(f".{path.name}.old-", path.parent)
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def resolve(path: str | Path) -> Path:
    """The checkpoint directory or weights file that ``path`` names.

    Accepted: a run folder, its ``checkpoints/`` folder or ``checkpoints/latest`` file, a checkpoint folder, or a
    ``model.safetensors`` file.
    """
    path = Path(path)
    if path.is_file() and path.name == LATEST:
        return RunFolder(path.parent.parent).latest()
    run = RunFolder(path.parent if path.name == "checkpoints" else path)
    if run.has_checkpoint():
        return run.latest()
    if (path / WEIGHTS).is_file() or (path.is_file() and path.suffix == ".safetensors"):
        return path
    if path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint; pass the run folder, a checkpoint folder or its {WEIGHTS}")
    if path.is_dir():
        raise CheckpointError(f"{path} holds no checkpoint ({WEIGHTS} or checkpoints/latest); "
                              f"train one with `pixelrnn train --out {path}`")
    raise CheckpointError(f"no checkpoint at {path}; give a run directory written by `pixelrnn train --out`")


def _weights_file(path: Path) -> Path:
    return path if path.is_file() else path / WEIGHTS


def read_model_config(path: str | Path) -> dict[str, Any]:
    """The model config stored in a checkpoint's weights file (``model.config``), without loading the weights."""
    return _read_metadata(_weights_file(resolve(path)))[0]


def _read_metadata(weights: Path) -> tuple[dict[str, Any], str | None]:
    """The model config and the weights' sha256 (None in checkpoints written before it was recorded)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({e}); it may be truncated") from None
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{weights} is not a pixelrnn checkpoint (its metadata lacks the model config)")
    if metadata.get("version") != VERSION:
        raise CheckpointError(f"{weights} has checkpoint format version {metadata.get('version')}; "
                              f"this pixelrnn reads version {VERSION}")
    return _json_object(metadata["config"], f"the model config in the metadata of {weights}"), metadata.get("sha256")


def _json_object(text: str, what: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object, or a CheckpointError naming ``what``."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{what} is not valid JSON ({e}); the checkpoint is damaged") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{what} is a JSON {type(value).__name__}, not an object; the checkpoint is damaged")
    return value


def _read_json(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {file}: {e}") from None
    return _json_object(text, str(file))


def _check_against_header(config: dict[str, Any], weights: Path) -> None:
    """Refuse a config that the weights file's own tensors do not bear out, reading only the file's header.

    The config is JSON that anyone can edit: ``layers`` of 10^12 would hang a build, ``hidden`` of 10^12 would ask
    for terabytes. The tensors' shapes in the safetensors header are what was saved, so the config must describe
    exactly them: first their total count (computed without building the model at its depth), then every name and
    shape (on the meta device, which allocates nothing).
    """
    try:
        with safe_open(str(weights), framework="pt") as f:
            held = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
        expected = parameter_count(config)
        if expected != sum(math.prod(shape) for shape in held.values()):
            raise CheckpointError(f"{weights} does not match its own config: the config describes a model of "
                                  f"{expected:,} values, the file holds {sum(map(math.prod, held.values())):,}; "
                                  "the file is corrupt or was edited")
        shapes = state_shapes(config)
    except (ConfigError, TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{weights} holds a config this pixelrnn cannot build: {e}") from None
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights} could not be read ({e}); it may be truncated or corrupt") from None
    if shapes != held:
        name = next(n for n in sorted(set(shapes) | set(held)) if shapes.get(n) != held.get(n))
        raise CheckpointError(f"{weights} does not match its own config: {name} is "
                              f"{'missing' if name not in held else held[name]} in the file, but the config needs "
                              f"{'none' if name not in shapes else shapes[name]}; the file is corrupt or was edited")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    verify: bool = True) -> AutoregressiveModel:
    """Rebuild a model from a checkpoint; no flags needed, since the checkpoint holds its config.

    Args:
        path: a run directory, a checkpoint directory, or a ``model.safetensors`` file.
        map_location: device for the weights.
        verify: check the weights against the sha256 recorded when they were saved; a checkpoint that records
            none is refused unless ``verify=False``, and loading without the check warns (:class:`UnverifiedWeights`).

    Returns:
        The model in eval mode, in the dtype it was saved in.
    """
    weights_path = _weights_file(resolve(path))
    config, sha256 = _read_metadata(weights_path)
    if sha256 is None and verify:
        raise CheckpointError(f"{weights_path} records no sha256 of its weights, so they cannot be verified; pass "
                              f"--no-verify (verify=False) to load it anyway")
    # Options added since the checkpoint was written take the value it was trained with (models/registry.py).
    config = upgrade_config(config)
    _check_against_header(config, weights_path)  # before anything of the config's size is allocated
    try:
        model = build_from_config(config)
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{weights_path} holds a config this pixelrnn cannot build: {e}") from None
    try:
        state = load_file(str(weights_path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights_path} could not be read ({e}); it may be truncated or corrupt") from None
    if not verify:
        warnings.warn(f"{weights_path} loaded without checking its weights against "
                      f"{'a sha256 (it records none)' if sha256 is None else 'their recorded sha256'} (--no-verify)",
                      UnverifiedWeights, stacklevel=2)
    elif weights_sha256(state) != sha256:
        raise CheckpointError(f"{weights_path} is damaged: its weights do not match the sha256 recorded when it was "
                              f"saved; use another checkpoint, or pass --no-verify to load it anyway")
    broken = next((name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if broken is not None:  # a diverged run: every likelihood, sample and code from it would be NaN
        raise CheckpointError(f"{weights_path} holds non-finite weights (NaN or inf, first in {broken}); the run "
                              f"diverged: use an earlier checkpoint, or train again with a lower --lr")
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        model = model.to(dtypes.pop())
    expected = model.state_dict()
    for name, tensor in state.items():
        if name in expected and tensor.dtype != expected[name].dtype:
            raise CheckpointError(f"{weights_path} stores {name} as {tensor.dtype}, not "
                                  f"{expected[name].dtype}; the file is corrupt")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{weights_path} does not match its own config ({first}); the file is corrupt") from None
    return model.to(map_location).eval()


def load_trainer_state(path: str | Path) -> dict | None:
    """The trainer state of a checkpoint, or None if it has none. Loaded with ``weights_only=True``."""
    directory = resolve(path)
    file = directory / TRAINER if directory.is_dir() else None
    if file is None or not file.is_file():
        return None
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a bad file; all mean the same to the user
        raise CheckpointError(f"{file} could not be read ({type(e).__name__}); it may be truncated or corrupt") from None


def read_training_config(path: str | Path) -> dict[str, Any]:
    """The training config stored beside a checkpoint, in its config.json ({} when it has none, e.g. a bare weights file)."""
    where = resolve(path)
    config_file = where / CONFIG if where.is_dir() else None
    if config_file and config_file.is_file():
        train = _read_json(config_file).get("train", {})
        if not isinstance(train, dict):
            raise CheckpointError(f"the training config in {config_file} is not a JSON object; the file is damaged")
        # Each setting that commands read from it (the data set, its folder, the image size, ...) is checked as the
        # command line checks it: a number where the data set's name belongs is a damaged file, not a crash later.
        declared = field_types(TrainConfig)
        try:
            return {key: typed(key, declared[key], value) if key in declared else value for key, value in train.items()}
        except ConfigError as e:
            raise CheckpointError(f"the training config in {config_file} is damaged: {e}") from None
    return {}


@dataclass(frozen=True)
class RunFolder:
    """Where a training run keeps its files (see the module docstring for the layout)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))  # accept a str, as every path argument here does

    @property
    def training_config(self) -> Path:
        """The run's training config (``train_config.json``): what ``--resume`` continues with."""
        return self.root / RUN_CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def pointer(self) -> Path:
        """The ``latest`` file: one line naming the newest checkpoint folder."""
        return self.checkpoints / LATEST

    def has_checkpoint(self) -> bool:
        return self.pointer.is_file()

    def latest(self) -> Path:
        """The newest checkpoint folder, as the ``latest`` pointer names it: a step folder of this run, nothing else.

        Raises:
            CheckpointError: the pointer is not text, or names anything but a ``step-NNNNNNNNN`` folder here.
        """
        try:
            name = self.pointer.read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{self.pointer} cannot be read as the name of a checkpoint ({type(e).__name__}); "
                                  f"write the newest step folder's name into it, e.g. step-000001000") from None
        if not re.fullmatch(r"step-\d{9}", name):
            raise CheckpointError(f"{self.pointer} names {name[:60]!r}, not a step folder of this run "
                                  f"(step-NNNNNNNNN); write the newest one's name into it")
        return self.checkpoints / name

    def step(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:09d}"

    def evaluation(self, data: str, split: str) -> Path:
        """Where ``pixelrnn evaluate`` writes its result for a data set and split.

        A named set gives e.g. ``eval-digits-test.json``; ``folder:PATH`` gives ``eval-folder-NAME-test.json`` with
        NAME the folder's own name, since the whole path would make a long name that says where, not what. Only
        letters, digits, ``.``, ``_`` and ``-`` are kept; any other character becomes ``_``.
        """
        if data.startswith("folder:"):
            folder = Path(data[len("folder:"):]).expanduser()
            data = f"folder-{(folder.resolve().name if folder.name in ('', '.', '..') else folder.name) or 'root'}"
        safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_" for ch in data)
        return self.root / f"eval-{safe}-{split}.json"

    def read_training_config(self) -> dict[str, Any]:
        return _read_json(self.training_config)

    def write_training_config(self, values: dict[str, Any]) -> None:
        write_atomic(self.training_config, (json.dumps(values, indent=2) + "\n").encode())

    def clean(self) -> list[Path]:
        """Remove what an interrupted save left in the checkpoints folder; returns what was removed."""
        stale = [p for pattern in TEMPORARY for p in self.checkpoints.glob(pattern)]
        for p in stale:
            with writing(p):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        return stale

    def save(self, step: int, model: AutoregressiveModel, trainer_state: dict, extra_config: dict | None = None,
             keep: int = KEEP) -> Path:
        """Save step ``step``, point ``latest`` at it atomically, and delete all but the ``keep`` newest."""
        path = save_checkpoint(self.step(step), model, trainer_state, extra_config)
        write_atomic(self.pointer, (path.name + "\n").encode())
        with writing(self.checkpoints):
            _fsync_dir(self.checkpoints)
            for old in sorted(p for p in self.checkpoints.glob("step-*") if p.is_dir())[:-keep]:
                if old == path:
                    continue
                if old.is_symlink():  # a step folder linked from elsewhere (another disk): drop the link, not the data
                    old.unlink()
                else:
                    shutil.rmtree(old)
        return path
