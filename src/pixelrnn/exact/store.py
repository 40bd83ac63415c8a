"""The integer model on disk, beside the weights it was made from: ``exact.safetensors``.

A checkpoint folder (a run's newest step folder, or a shipped model's folder) holds ``model.safetensors`` (the float
weights) and, once the model has been quantised, ``exact.safetensors``: every integer tensor of the integer model
(int64), and in the file's metadata its description (family, config, settings, each operation's taps and
exponents), the fingerprint of the float model it was made from, where its calibration images came from, and its
own fingerprint. Loading runs no code, checks the fingerprint and proves every operation exact again
(:mod:`.ops`), so a damaged or edited file is refused, never used.

The integer model's fingerprint (sha256 of its description and integers) is what a compressed file records: a file
decodes only with the very integers that encoded it. The float model's fingerprint says whether a stored integer
model still belongs to the weights beside it; one that does not is made again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..errors import CheckpointError, write_atomic
from .frequencies import EXP_BITS, LOGIT_EXP, PRECISION
from .model import IntegerModel, Settings
from .ops import op_from_state

FORMAT, VERSION = "pixelrnn-exact", "1"
FILE = "exact.safetensors"


def model_fingerprint(model) -> str:
    """sha256 of a float model's config and weights: a file can only be decoded by the model that encoded it."""
    digest = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _description(integer: IntegerModel) -> dict[str, Any]:
    """Everything but the integers that decides the integer model's results."""
    return {"family": integer.family, "config": integer.config, "settings": integer.settings.to_dict(),
            "ops": {name: op.describe() for name, op in integer.ops.items()},
            "frequencies": {"logit_exp": LOGIT_EXP, "exp_bits": EXP_BITS, "precision": PRECISION}}


def _tensors(integer: IntegerModel) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": t.detach().cpu().contiguous() for name, op in integer.ops.items()
            for key, t in op.tensors().items()}


def fingerprint(integer: IntegerModel) -> str:
    """sha256 of the integer model's description and integers, independent of device and dtype of storage."""
    digest = hashlib.sha256(json.dumps(_description(integer), sort_keys=True).encode())
    for name, tensor in sorted(_tensors(integer).items()):
        digest.update(f"{name}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.to(torch.int64).numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def exact_path(checkpoint: Path) -> Path:
    """Where the integer model of a checkpoint folder (or weights file) lives: beside its weights."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_file():
        return checkpoint.with_name(FILE if checkpoint.name == "model.safetensors" else
                                    f"{checkpoint.stem}.{FILE}")
    return checkpoint / FILE


def to_bytes(integer: IntegerModel) -> bytes:
    metadata = {"format": FORMAT, "version": VERSION, "description": json.dumps(_description(integer)),
                "info": json.dumps(integer.info), "sha256": fingerprint(integer)}
    return save(_tensors(integer), metadata=metadata)


def save_integer(path: str | Path, integer: IntegerModel) -> Path:
    """Write the integer model to ``path`` atomically."""
    return write_atomic(path, to_bytes(integer))


def load_integer(path: str | Path, families: dict[str, type[IntegerModel]]) -> IntegerModel:
    """Read an integer model written by :func:`save_integer`.

    Raises:
        CheckpointError: the file is unreadable, of another format, of an unknown family, damaged (its fingerprint
            does not match) or holds an operation that fails its exactness proof.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); delete it to compute the integer "
                              "model again") from None
    if metadata.get("format") != FORMAT or metadata.get("version") != VERSION:
        raise CheckpointError(f"{path} is not an integer model this pixelrnn reads (format "
                              f"{metadata.get('format')!r} version {metadata.get('version')!r}); delete it to compute "
                              "it again")
    try:
        description = json.loads(metadata["description"])
        info = json.loads(metadata.get("info", "{}"))
        family = families[description["family"]]
        settings = Settings(**description["settings"])
        ops = {}
        for name, meta in description["ops"].items():
            prefix = f"{name}."
            ops[name] = op_from_state(name, meta, {k[len(prefix):]: v for k, v in tensors.items()
                                                   if k.startswith(prefix) and "." not in k[len(prefix):]})
        config = description["config"]
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path} holds an integer model this pixelrnn cannot read ({type(e).__name__}: "
                              f"{e}); delete it to compute it again") from None
    integer = family(config, settings, ops, info)
    if fingerprint(integer) != metadata.get("sha256") or _description(integer) != description:
        raise CheckpointError(f"{path} is damaged: its integers do not match the fingerprint recorded when it was "
                              "written; delete it to compute the integer model again")
    return integer
