"""What a run keeps beside its weights to resume exactly: the trainer state, saved once and loaded validated.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 5, trains with RMSProp; its running
averages, the learning-rate schedule, the step and the RNG state are as much a part of the run as the weights. A
checkpoint stores them in ``trainer.pt`` (:mod:`pixelrnn.checkpoint`, read with ``weights_only=True``), and
:class:`TrainState` is that file's one reader and writer. A file with a missing entry or a value of the wrong type
(damaged, or written by something else) is refused in one line that names it, before any of it is used.

Resuming with another total (``--resume --steps N``) keeps the learning rate continuous: from the rate the run had
reached, it moves linearly over ``warmup_steps`` to the rate that the schedule for the new total gives at that step,
then follows that schedule (:func:`lr_factor`). A finished cosine run (rate 0) so warms up again, and an unfinished
one glides onto the stretched curve, without a jump either way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from . import distributed
from .config import TrainConfig
from .errors import CheckpointError, ConfigError


def lr_factor(config: TrainConfig, total_steps: int,
              extended: tuple[int, float] | None = None) -> Callable[[int], float]:
    """The learning rate factor of each step: linear warm-up, then constant or cosine decay to zero at the end.

    Args:
        config: the training config (schedule, warm-up).
        total_steps: the run's total number of steps.
        extended: (step, factor) where a resumed run changed its total: from that factor, a linear ramp of
            ``warmup_steps`` joins the schedule for ``total_steps`` (see the module docstring).
    """
    warmup = min(config.warmup_steps, total_steps // 10)

    def planned(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.lr_schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    if extended is None:
        return planned
    start, start_factor = extended
    ramp = max(1, min(config.warmup_steps, total_steps - start))
    target = planned(start + ramp)

    def factor(step: int) -> float:
        if step >= start + ramp:
            return planned(step)
        return start_factor + (target - start_factor) * (step - start) / ramp

    return factor


# Settings that change only how fast a run goes: a resume may change them, and says so in one line.
SPEED_SETTINGS = ("precision", "compile", "eval_batch_size")


def check_run_folder(run: ckpt.RunFolder, config: TrainConfig, resume: bool) -> None:
    """Refuse a new run in a folder that holds one, or a resume with settings that would make it another run.

    Only how long, how often and how fast may change on resume (:data:`SPEED_SETTINGS` says so in one line).
    """
    if not resume:
        if run.has_checkpoint():
            raise ConfigError(f"{run.root} already holds a run; pass --resume to continue it, or choose another --out")
        return
    if not run.has_checkpoint():
        raise ConfigError(f"nothing to resume in {run.root}: it holds no checkpoint; drop --resume to start a run")
    run.clean()  # what a killed save left behind
    before = TrainConfig.from_dict(run.read_training_config())
    may_change = {"steps", "epochs", "eval_every", "eval_limit", "checkpoint_every", "log_every", "data_dir",
                  "grad_accum", *SPEED_SETTINGS}
    was, now = before.to_dict(), config.to_dict()
    changed = [k for k, v in now.items() if k not in may_change and was[k] != v]
    if changed:
        raise ConfigError(f"{run.root} was trained with other values of {', '.join(changed)}; "
                          f"resume with the run's own settings (see {run.training_config})")
    speed = [f"{k} {now[k]} (was {was[k]})" for k in SPEED_SETTINGS if now[k] != was[k]]
    if speed and distributed.is_main():
        print(f"resuming with {', '.join(speed)}: {'a speed setting' if len(speed) == 1 else 'speed settings'}; "
              f"the run continues exactly otherwise")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _optimizer_state(value: Any) -> bool:
    """An optimizer's state_dict: a dict of per-parameter state and a non-empty list of groups with a rate."""
    if not isinstance(value, dict) or not isinstance(value.get("state"), dict):
        return False
    groups = value.get("param_groups")
    return (isinstance(groups, list) and len(groups) > 0
            and all(isinstance(g, dict) and _number(g.get("lr")) for g in groups))


def _extension(value: Any) -> bool:
    return value is None or (isinstance(value, (tuple, list)) and len(value) == 2 and _whole(value[0])
                             and _number(value[1]))


# Each entry of the file, what it must be, and whether a file may lack it (files from before it was recorded).
_ENTRIES = {
    "optimizer": (_optimizer_state, "an optimizer state (a dict with 'state' and 'param_groups')", False),
    "schedule": (lambda v: isinstance(v, dict), "a learning-rate schedule state (a dict)", False),
    "step": (lambda v: _whole(v) and v >= 0, "a whole number of at least 0", False),
    "torch_rng": (lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.dim() == 1,
                  "torch's RNG state (a 1-D uint8 tensor)", False),
    "total_steps": (lambda v: v is None or (_whole(v) and v >= 1), "a whole number of at least 1", True),
    "lr_extended": (_extension, "none or a (step, factor) pair", True),
    "seconds": (lambda v: _number(v) and v >= 0, "a number of seconds, at least 0", True),
}


@dataclass
class TrainState:
    """What ``trainer.pt`` holds: the optimizer, the schedule, the step, the RNG, the total steps, where the
    schedule was last extended, and the training time so far."""

    optimizer: dict[str, Any]  # the optimizer's state_dict
    schedule: dict[str, Any]  # the LambdaLR schedule's state_dict
    step: int  # optimizer steps taken
    torch_rng: torch.Tensor  # torch.get_rng_state() at that step
    total_steps: int | None = None  # the run's total when saved; None in files from before it was recorded
    lr_extended: tuple[int, float] | None = None  # (step, factor) where a resume last changed the total
    seconds: float = 0.0  # training time, cumulative across resumes

    def save(self, run: ckpt.RunFolder, model: torch.nn.Module, extra_config: dict | None = None) -> Path:
        """Save a checkpoint of ``model`` with this state at step ``self.step`` into ``run``; returns its folder."""
        # Not dataclasses.asdict: it would deep-copy every tensor of the optimizer's state.
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return run.save(self.step, model, values, extra_config=extra_config)

    @classmethod
    def load(cls, path: str | Path) -> TrainState | None:
        """The state of the checkpoint at ``path`` (a run folder or a checkpoint), None if it has none.

        Raises:
            CheckpointError: the file is unreadable, or an entry is missing or of the wrong type.
        """
        values = ckpt.load_trainer_state(path)
        if values is None:
            return None
        where = f"{ckpt.resolve(path) / ckpt.TRAINER}"
        if not isinstance(values, dict):
            raise CheckpointError(f"{where} holds a {type(values).__name__}, not a trainer state; the file is "
                                  f"damaged: resume from another checkpoint, or start a new run with another --out")
        for name, (valid, what, optional) in _ENTRIES.items():
            if name not in values and optional:
                continue
            if name not in values:
                raise CheckpointError(f"{where} lacks its {name!r} entry; the file is damaged: resume from another "
                                      f"checkpoint, or start a new run with another --out")
            if not valid(values[name]):
                raise CheckpointError(f"{where}: {name!r} must be {what}, not {type(values[name]).__name__}; the "
                                      f"file is damaged: resume from another checkpoint, or start a new run")
        state = cls(**{name: values[name] for name in _ENTRIES if name in values})
        if state.lr_extended is not None:
            state.lr_extended = (int(state.lr_extended[0]), float(state.lr_extended[1]))
        state.seconds = float(state.seconds)
        return state

    def schedule_extension(self, total_steps: int, lr: float) -> tuple[int, float] | None:
        """Where the resumed run's learning-rate schedule was last extended, as (step, factor); None if never.

        With the total it was saved with, the schedule is the same (an exact resume); with another, it is extended
        from the rate the next step would have used (see :mod:`pixelrnn.train`).
        """
        if self.total_steps in (None, total_steps):
            return self.lr_extended
        next_lr = self.optimizer["param_groups"][0]["lr"]
        return self.step, next_lr / lr
