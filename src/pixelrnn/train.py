"""Training: one loop that reads top to bottom, and resumes exactly.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 5: the models are trained by maximum
likelihood with RMSProp (the best of the update rules the paper tried) at batch size 16 for MNIST and CIFAR-10, on
inputs that are only scaled and centred. The loss is bits/dim of the batch, computed in float32 even when the
network runs in bfloat16.

A run lives in one folder (``checkpoint.RunFolder``). Resuming restores the weights, the optimizer and schedule,
the step and the RNG state; the data order is a pure function of the seed and the step, so N steps in one go and
N/2 + resume + N/2 give the same weights.

Resuming with another total (``--resume --steps N``) keeps the learning rate continuous: from the rate the run had
reached, it moves linearly over ``warmup_steps`` to the rate that the schedule for the new total gives at that step,
then follows that schedule. A finished cosine run (rate 0) so warms up again, and an unfinished one glides onto the
stretched curve, without a jump either way.

The same loop trains on one CPU, one GPU, or many processes under torchrun (see :mod:`pixelrnn.distributed`): the
model is wrapped in DistributedDataParallel, each rank trains on its fixed slice of every global batch (and of each
``grad_accum`` micro-step), and rank 0 alone writes checkpoints, metrics and the progress bar.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import distributed
from .config import TrainConfig, check_kernels
from .data import load_dataset
from .devices import resolve_device, tf32, to_device
from .distributions import bits_per_dim
from .errors import CheckpointError, ConfigError, write_atomic, writing
from .evaluate import evaluate
from .models import build_model
from .precision import autocast, check_precision

# A run expected to take longer than this says so, in one line, once its first steps have been timed.
LONG_RUN_SECONDS = 600
TIMED_STEPS = 5


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=0.95, eps=1e-6)
    return torch.optim.Adam(params, lr=config.lr)


def lr_factor(config: TrainConfig, total_steps: int, extended: tuple[int, float] | None = None):
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


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """The training images of ``step``: epoch e is a permutation seeded by (seed, e), cut into full batches."""
    per_epoch = max(1, n // batch_size)
    epoch, index = divmod(step, per_epoch)
    # Modulo 2**64, the range torch seeds from: the same seeds as plain arithmetic wherever that fitted.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64))
    return perm[index * batch_size:(index + 1) * batch_size]


class MetricsLog:
    """Appends rows to metrics.csv, and to TensorBoard when it is installed.

    ``seconds`` is the training time, cumulative across resumes. Starting at ``step``, rows logged after it (by a
    run that went on past its last checkpoint) are dropped, so that each step appears once after a resume.
    """

    # nats_per_image: the paper's unit for binarized MNIST (2 levels); filled for every data set.
    FIELDS = ("step", "split", "bits_per_dim", "images_per_s", "lr", "seconds", "nats_per_image")

    def __init__(self, run: ckpt.RunFolder, step: int = 0):
        self.path = run.metrics
        kept, fields = [], self.FIELDS
        if self.path.exists():
            with writing(self.path), open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                fields = tuple(reader.fieldnames or self.FIELDS)  # a run from before a column existed keeps its own
                kept = [row for row in reader if int(row["step"]) <= step]
        self.seconds = max((float(row["seconds"]) for row in kept if row.get("seconds")), default=0.0)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        write_atomic(self.path, text.getvalue().encode())  # the kept rows replace the old file only once complete
        with writing(self.path):
            self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields, extrasaction="ignore")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(run.tensorboard))
        except ImportError:  # TensorBoard is optional
            self.tensorboard = None

    def write(self, **row) -> None:
        with writing(self.path):
            self.writer.writerow(row)
            self.file.flush()
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(f"{row['split']}/bits_per_dim", row["bits_per_dim"], row["step"])

    def close(self) -> None:
        with writing(self.path):
            self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _check_run_dir(run: ckpt.RunFolder, config: TrainConfig, resume: bool) -> None:
    if not resume:
        if run.has_checkpoint():
            raise ConfigError(f"{run.root} already holds a run; pass --resume to continue it, or choose another --out")
        return
    if not run.has_checkpoint():
        raise ConfigError(f"nothing to resume in {run.root}: it holds no checkpoint; drop --resume to start a run")
    run.clean()  # what a killed save left behind
    before = TrainConfig.from_dict(run.read_config())
    # Only how long and how often may change on resume; anything else would be a different run.
    may_change = {"steps", "epochs", "eval_every", "eval_limit", "checkpoint_every", "log_every", "eval_batch_size",
                  "data_dir", "grad_accum", "compile"}
    changed = [k for k, v in config.to_dict().items() if k not in may_change and before.to_dict()[k] != v]
    if changed:
        raise ConfigError(f"{run.root} was trained with other values of {', '.join(changed)}; "
                          f"resume with the run's own settings (see {run.config})")


def _schedule_extension(state: dict, total_steps: int, lr: float) -> tuple[int, float] | None:
    """Where a resumed run's learning rate schedule was last extended, as (step, factor); None if never."""
    if state.get("total_steps", total_steps) == total_steps:
        return state.get("lr_extended")  # the same total as before: the same schedule, for an exact resume
    next_lr = state["optimizer"]["param_groups"][0]["lr"]  # the rate the next step would have used
    return int(state["step"]), next_lr / lr


@dataclass
class TrainResult:
    """How a call of :func:`train` went."""

    step: int  # the step the run reached
    total_steps: int
    stopped: str  # "finished", "already finished", "time limit", "interrupted" (Ctrl-C) or "stop_after"
    checkpoint: Path | None  # the run's newest checkpoint folder
    train_bits_per_dim: float | None = None  # of the last step; None if this call made no step
    train_nats_per_image: float | None = None  # the same, in the paper's unit for binarized MNIST
    images_per_s: float | None = None  # over the last logging window
    valid: dict | None = None  # the last validation (``evaluate``'s dict, with the "step" it was measured at)


def estimate_line(seconds_per_step: float, steps_left: int) -> str:
    """One plain line on how long the rest of a run will take."""
    minutes = seconds_per_step * steps_left / 60
    when = f"{minutes:.0f} minutes" if minutes < 120 else f"{minutes / 60:.1f} hours"
    return (f"about {when} to go: {steps_left} steps at {seconds_per_step:.2f} s/step "
            f"(--time-limit MINUTES stops with a checkpoint; --resume continues)")


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, time_limit: float | None = None,
          device: str | torch.device | None = None, verify: bool = True) -> dict:
    """Train a model as ``config`` says, in ``run_dir``.

    Args:
        config: the training configuration.
        run_dir: the run directory (created if needed).
        resume: continue the run in ``run_dir`` from its latest checkpoint.
        progress: show a progress bar with live bits/dim and images/s.
        stop_after: stop (with a checkpoint) after this many steps of this call, as an interruption would.
        time_limit: stop (with a checkpoint) after this many seconds of training in this call (under torchrun,
            all ranks stop at the step where the first of them reaches it).
        device: where to train: "auto" (the default: CUDA when available), "cpu", "cuda", "cuda:N" or a
            torch.device. Under torchrun every rank calls this with the same arguments.
        verify: check the resumed checkpoint's weights against their recorded sha256.

    Returns:
        {"step", "total_steps", "train_bits_per_dim", "train_nats_per_image" (the paper's unit for binarized
        MNIST) and "images_per_s" (None if this call made no step),
        "valid": evaluation dict (with the "step" it was measured at) or None, "stopped": why it stopped
        ("finished", "already finished", "time limit", "interrupted" (Ctrl-C), "stop_after"), "checkpoint": the
        run's newest checkpoint folder}.
    """
    run = ckpt.RunFolder(run_dir)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    check_precision(config.precision, device)
    distributed.check_split(config.batch_size, config.grad_accum, distributed.world_size())
    main = distributed.is_main()
    _check_run_dir(run, config, resume)
    with distributed.local_main_first():  # a first load downloads or decodes once per machine
        train_data = load_dataset(config.data, "train", config.data_dir, image_size=config.image_size)
        valid_data = load_dataset(config.data, "valid", config.data_dir, image_size=config.image_size)
    total_steps = config.total_steps(len(train_data))
    state = ckpt.load_trainer_state(run.root) if resume else None
    if resume and state is None:
        raise CheckpointError(f"{run.latest()} has no {ckpt.TRAINER} (optimizer and step), so the run cannot be "
                              f"resumed exactly; start a new run with another --out")
    step = int(state["step"]) if state else 0
    result = {"step": step, "total_steps": total_steps, "train_bits_per_dim": None, "train_nats_per_image": None,
              "valid": None, "images_per_s": None, "stopped": "already finished", "checkpoint": run.latest() if resume else None}
    if step >= total_steps:
        return TrainResult(**result)  # nothing to train; the run and its files stay as they were

    check_kernels(config.model_options, train_data.image_shape)
    torch.manual_seed(config.seed)
    model = build_model(config.model, train_data.image_shape, train_data.levels, **config.model_options)
    conditional = bool(model.cfg.num_classes)
    if conditional and (train_data.labels is None or train_data.num_classes != model.cfg.num_classes):
        raise ConfigError(f"a class-conditional model of {model.cfg.num_classes} classes needs labels of as many "
                          f"classes; {config.data} has {train_data.num_classes or 'no'} classes")
    model.to(device)
    optimizer = make_optimizer(config, model.parameters())
    extended = _schedule_extension(state, total_steps, config.lr) if state else None
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, total_steps, extended))
    if state:
        model.load_state_dict(ckpt.load_checkpoint(run.root, verify=verify).state_dict())  # read on the CPU, copied to the device
        optimizer.load_state_dict(state["optimizer"])  # moves its state to the parameters' device
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
    distributed.barrier()  # every rank has read the run folder before rank 0 writes to it
    if main:
        run.write_config(config.to_dict())
    # What the steps run through: DDP averages the gradients over the ranks; torch.compile is optional.
    net = model
    if distributed.active():
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")

    def save() -> None:
        if not main:
            return
        state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step,
                 "torch_rng": torch.get_rng_state(), "total_steps": total_steps, "lr_extended": extended,
                 "seconds": training_time()}
        result["checkpoint"] = run.save(step, model, state, extra_config={"train": config.to_dict()})

    def training_time() -> float:
        return trained_before + time.perf_counter() - start

    def validate(limit: int | None) -> dict:
        images = valid_data.images if limit is None else valid_data.images[:limit]
        labels = valid_data.labels if limit is None or valid_data.labels is None else valid_data.labels[:limit]
        result = evaluate(model, images, labels, batch_size=config.eval_batch_size, precision=config.precision,
                          compile=config.compile)
        result["step"] = step
        if main:
            log.write(step=step, split="valid", bits_per_dim=result["bits_per_dim"], images_per_s="", lr="",
                      seconds=round(training_time(), 2), nats_per_image=result["nats_per_image"])
        return result

    log = MetricsLog(run, step) if main else None
    # training time goes on across resumes
    trained_before = max((state or {}).get("seconds", 0.0), log.seconds if log else 0.0)
    dims = math.prod(model.image_shape)  # bits/dim to nats per image: times C*H*W*ln 2
    model.train()
    start = time.perf_counter()
    first_step = step
    # disable=None: no bar without a terminal (a log file or CI), where every redraw would be a line of its own;
    # under torchrun, rank 0's bar only.
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step",
               disable=None if progress and main else True)
    try:
        window_start, window_images = time.perf_counter(), 0
        while step < total_steps:
            distributed.fault_hook(step)
            # The global batch of this step, as in a single process; this rank's slice of each micro-step.
            index = batch_indices(step, len(train_data), config.batch_size, config.seed)
            micro = distributed.micro_batches(index, config.grad_accum)
            optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0
            with tf32(True):  # training steps only: every reported likelihood runs without TF32
                for k, part in enumerate(micro):
                    x = to_device(train_data.images[part], device).long()
                    y = to_device(train_data.labels[part], device) if conditional else None
                    # DDP averages over the ranks; dividing by the micro-steps makes the sum the global mean.
                    sync = k == len(micro) - 1 or not distributed.active()
                    with nullcontext() if sync else net.no_sync():
                        with autocast(config.precision, device):
                            logits = net(x, y)
                        loss = bits_per_dim(logits.float(), x) / len(micro)
                        scaler.scale(loss).backward()
                    loss_sum += loss.detach()
                if config.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            schedule.step()
            step += 1
            window_images += config.batch_size
            train_bpd = distributed.sum_over_ranks(float(loss_sum))[0] / distributed.world_size()
            result["train_bits_per_dim"] = train_bpd
            result["train_nats_per_image"] = train_bpd * dims * math.log(2)
            bar.update(1)
            if step - first_step == 1:
                timed_from = time.perf_counter()  # the first step pays one-off costs; time the ones after it
            if step - first_step == 1 + TIMED_STEPS:
                per_step = (time.perf_counter() - timed_from) / TIMED_STEPS
                last = total_steps if stop_after is None else min(total_steps, first_step + stop_after)
                if main and per_step * (last - step) >= LONG_RUN_SECONDS:
                    bar.write(estimate_line(per_step, last - step))
            if step % config.log_every == 0 or step == total_steps:
                result["images_per_s"] = window_images / (time.perf_counter() - window_start)
                bar.set_postfix(bpd=f"{result['train_bits_per_dim']:.4f}", img_s=f"{result['images_per_s']:.1f}")
                if main:
                    log.write(step=step, split="train", bits_per_dim=result["train_bits_per_dim"],
                              images_per_s=round(result["images_per_s"], 2), lr=schedule.get_last_lr()[0],
                              seconds=round(training_time(), 2),
                              nats_per_image=result["train_nats_per_image"])
                window_start, window_images = time.perf_counter(), 0
            if config.eval_every and step % config.eval_every == 0 and step < total_steps:
                result["valid"] = validate(config.eval_limit)
                nats = f", {result['valid']['nats_per_image']:.2f} nats/image" if model.levels == 2 else ""
                if main:
                    bar.write(f"step {step}: valid bits/dim {result['valid']['bits_per_dim']:.4f}{nats} "
                              f"(first {result['valid']['images']} images)")
            if step % config.checkpoint_every == 0:
                save()
            if stop_after is not None and step - first_step >= stop_after:
                result["stopped"] = "stop_after"
                break
            if time_limit is not None and distributed.any_rank(time.perf_counter() - start >= time_limit):
                result["stopped"] = "time limit"
                break
        else:
            result["stopped"] = "finished"
        if result["checkpoint"] is None or result["checkpoint"].name != run.step(step).name:
            save()
        distributed.check_replicas(model)
        if step >= total_steps:
            result["valid"] = validate(None)
    except KeyboardInterrupt:
        save()  # an interrupted run resumes from where it stopped
        result["stopped"] = "interrupted"
    finally:
        bar.close()
        if log is not None:
            log.close()
    if result["images_per_s"] is None and step > first_step:  # stopped before the first log step
        result["images_per_s"] = (step - first_step) * config.batch_size / (time.perf_counter() - start)
    result["step"] = step
    return TrainResult(**result)
