"""What a training run says: its first lines, and how long it will take.

Training the models of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) takes from minutes to days
depending on the preset and the machine, so a run says at once what it is about to do (the data and its split, the
model, the device and the precision ``auto`` chose) and, after its first steps, how long the rest will take. A size
or a precision nobody chose is then seen before the hours go by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .devices import describe as describe_device

if TYPE_CHECKING:  # the loop imports this module to print; the types are for reading only
    from .train import TrainLoop
    from .train_state import TrainState


def estimate_line(seconds_per_step: float, steps_left: int) -> str:
    """One plain line on how long the rest of a run will take."""
    minutes = seconds_per_step * steps_left / 60
    when = f"{minutes:.0f} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours"
    return (f"about {when} to go: {steps_left} steps at {seconds_per_step:.2f} s/step "
            f"(--time-limit MINUTES stops with a checkpoint; --resume continues)")


def first_lines(loop: TrainLoop, state: TrainState | None) -> list[str]:
    """What a run says before its first step: where it starts, the data and its split, the model, and where it
    runs, so that a size or a precision nobody chose is seen at once."""
    train_data, valid_data = loop.train_data, loop.valid_data
    shape = "x".join(map(str, train_data.image_shape))
    held_out = f", {len(valid_data)} test" if train_data.name.startswith("folder:") else ""  # a folder splits 80/10/10
    settings = loop.model.settings
    sizes = ", ".join(f"{label} {getattr(settings, name)}" for name, label in
                      (("base", "base"), ("small", "small"), ("layers", "layers"), ("hidden", "h ="), ("head", "head"))
                      if hasattr(settings, name))
    parameters = sum(p.numel() for p in loop.model.parameters())
    lines = [f"resuming from step {state.step} of {loop.total_steps}"] if state else []
    return lines + [
        f"data: {train_data.name}: {len(train_data)} train, {len(valid_data)} validation{held_out} images of "
        f"{shape}, {train_data.levels} levels",
        f"model: {loop.model.name}, {sizes}: {parameters:,} parameters",
        f"device: {describe_device(loop.device)}, precision {loop.precision}{_why(loop)}, "
        f"batch {loop.config.batch_size}, {loop.total_steps} steps"]


def _why(loop: TrainLoop) -> str:
    """Why ``auto`` chose the precision it did, in a few words ("" for a precision given by name)."""
    if loop.config.precision != "auto":
        return ""
    return " (auto: bf16 is native here)" if loop.precision == "bf16" else " (auto: no native bf16 here)"
