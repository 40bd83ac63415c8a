"""Training: one loop that reads top to bottom, and resumes exactly.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), section 5: the models are trained by maximum
likelihood with RMSProp (the best of the update rules the paper tried) at batch size 16 for MNIST and CIFAR-10, on
inputs that are only scaled and centred. The loss is bits/dim of the batch, computed in float32 even when the
network runs in bfloat16.

A run lives in one folder (``checkpoint.RunFolder``). Resuming restores the weights, the optimizer and schedule,
the step and the RNG state; the data order is a pure function of the seed and the step, so N steps in one go and
N/2 + resume + N/2 give the same weights.

Resuming with another total (``--resume --steps N``) keeps the learning rate continuous (see
:func:`pixelrnn.train_state.lr_factor`).

The same loop trains on one CPU, one GPU, or many processes under torchrun (see :mod:`pixelrnn.distributed`): the
model is wrapped in DistributedDataParallel, each rank trains on its fixed slice of every global batch (and of each
``grad_accum`` micro-step), and rank 0 alone writes checkpoints, metrics and the progress bar.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import distributed
from .budget import check_training_fits
from .config import TrainConfig, check_kernels
from .data import ImageData, load_dataset
from .devices import num_threads, resolve_device, tf32, to_device
from .distributions import bits_per_dim
from .errors import CheckpointError, ConfigError, no_empty_folders_on_failure
from .evaluate import evaluate
from .metrics import MetricsLog
from .models import AutoregressiveModel, build_model
from .precision import autocast, check_precision, resolve_precision
from .run_lock import locked
from .signals import StopSignals
from .threads import ThreadFitter
from .train_report import estimate_line, first_lines
from .train_state import TrainState, check_run_folder, lr_factor

# A run expected to take longer than this says so, in one line, once its first steps have been timed.
LONG_RUN_SECONDS = 600
TIMED_STEPS = 5


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=0.95, eps=1e-6)
    return torch.optim.Adam(params, lr=config.lr)


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """The training images of ``step``: epoch e is a permutation seeded by (seed, e), cut into full batches."""
    per_epoch = max(1, n // batch_size)
    epoch, index = divmod(step, per_epoch)
    # Modulo 2**64, the range torch seeds from: the same seeds as plain arithmetic wherever that fitted.
    perm = torch.randperm(n, generator=torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64))
    return perm[index * batch_size:(index + 1) * batch_size]


@dataclass
class TrainResult:
    """How a call of :func:`train` went."""

    step: int  # the step the run reached
    total_steps: int
    # "finished", "already finished", "time limit", "interrupted" (Ctrl-C), "terminated" (SIGTERM or SIGUSR1, see
    # pixelrnn.signals) or "stop_after"
    stopped: str
    checkpoint: Path | None  # the run's newest checkpoint folder
    train_bits_per_dim: float | None = None  # of the last step; None if this call made no step
    train_nats_per_image: float | None = None  # the same, in the paper's unit for binarized MNIST
    images_per_s: float | None = None  # over the last logging window
    valid: dict | None = None  # the last validation (``evaluate``'s dict, with the "step" it was measured at)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
               batches: Sequence[tuple[torch.Tensor, torch.Tensor | None]], precision: str = "fp32",
               grad_clip: float = 0.0, scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One optimizer step over the micro-batches of one global batch; returns its loss in bits/dim.

    Each micro-batch's loss is divided by their number, so that the gradients add up to those of the mean over the
    whole batch. Under DDP the gradients are averaged over the ranks once, at the last micro-batch.

    The loss comes back as a scalar tensor on the batches' device, not read: a read would make the host wait for
    the device at every step. The training loop reads it at its logging steps only (``float(loss)``).

    Args:
        net: the network to step (the model, or its DDP or compiled wrapper).
        optimizer: the optimizer of the model's parameters.
        batches: (images int64 [b, C, H, W], class labels [b] or None) per micro-batch, on the model's device.
        precision: the autocast precision of the forward pass; the loss is computed in float32.
        grad_clip: the largest global gradient norm; 0 does not clip.
        scaler: the gradient scaler of fp16 training (None: no scaling).
    """
    if scaler is None:
        scaler = torch.amp.GradScaler(enabled=False)
    optimizer.zero_grad(set_to_none=True)
    with tf32(True):  # training steps only: every reported likelihood runs without TF32
        for k, (x, y) in enumerate(batches):
            sync = k == len(batches) - 1 or not distributed.active()
            with nullcontext() if sync else net.no_sync():
                with autocast(precision, x.device):
                    logits = net(x, y)
                loss = bits_per_dim(logits.float(), x) / len(batches)
                scaler.scale(loss).backward()
            loss_sum = loss.detach() if k == 0 else loss_sum + loss.detach()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]],
                                           grad_clip)
        scaler.step(optimizer)
        scaler.update()
    return loss_sum


def _load_data(config: TrainConfig) -> tuple[ImageData, ImageData]:
    with distributed.local_main_first():  # a first load downloads or decodes once per machine
        train_data = load_dataset(config.data, "train", config.data_dir, image_size=config.image_size)
        valid_data = load_dataset(config.data, "valid", config.data_dir, image_size=config.image_size)
    return train_data, valid_data


def _build(config: TrainConfig, data: ImageData, device: torch.device) -> AutoregressiveModel:
    """The model of ``config`` for ``data``, seeded by the run's seed, on ``device``."""
    check_kernels(config.model_options, data.image_shape)
    micro_batch = -(-config.batch_size // (config.grad_accum * distributed.world_size()))
    check_training_fits({"model": config.model, "image_shape": data.image_shape, "levels": data.levels,
                         **config.model_options}, micro_batch, device)  # before anything of its size is allocated
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.image_shape, data.levels, **config.model_options)
    classes = model.settings.num_classes
    if classes and (data.labels is None or data.num_classes != classes):
        raise ConfigError(f"a class-conditional model of {classes} classes needs labels of as many "
                          f"classes; {config.data} has {data.num_classes or 'no'} classes")
    # Once here, on the CPU: the forward pass checks labels only where that costs no host read (models/base.py).
    if classes and len(data.labels) and (data.labels.min() < 0 or data.labels.max() >= classes):
        raise ConfigError(f"{config.data} has class labels outside 0..{classes - 1}; check the data set's label file")
    return model.to(device)


class TrainLoop:
    """One call of :func:`train` once it is set up: the model, its optimizer and schedule, the data, the metrics
    log and the clock; each method is one thing the loop does."""

    def __init__(self, config: TrainConfig, run: ckpt.RunFolder, data: tuple[ImageData, ImageData],
                 device: torch.device, state: TrainState | None, total_steps: int, verify: bool):
        self.config, self.run, self.device, self.total_steps = config, run, device, total_steps
        self.train_data, self.valid_data = data
        self.main = distributed.is_main()
        self.step = self.first_step = state.step if state else 0
        self.model = _build(config, self.train_data, device)
        self.optimizer = make_optimizer(config, self.model.parameters())
        self.extended = state.schedule_extension(total_steps, config.lr) if state else None
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                          lr_factor(config, total_steps, self.extended))
        if state:
            self._restore(state, verify)
        distributed.barrier()  # every rank has read the run folder before rank 0 writes to it
        if self.main:
            run.write_training_config(config.to_dict())
        # What the steps run through: DDP averages the gradients over the ranks; torch.compile is optional.
        self.net = self.model
        if distributed.active():
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None)
        if config.compile:
            self.net = torch.compile(self.net)
        self.precision = resolve_precision(config.precision, device)  # "auto" decided here, for this machine
        if config.precision == "auto" and distributed.any_rank(self.precision != "bf16"):
            self.precision = "fp32"  # ranks that decide apart (a probe near its threshold) agree on the safe one
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.log = MetricsLog(run, self.step) if self.main else None
        # training time goes on across resumes
        self.trained_before = max(state.seconds if state else 0.0, self.log.seconds if self.log else 0.0)
        self.started = time.perf_counter()
        self.window_start, self.window_images = self.started, 0
        self.loss: torch.Tensor | None = None  # the last step's bits/dim, on the device until read
        self.result = TrainResult(step=self.step, total_steps=total_steps, stopped="finished",
                                  checkpoint=run.latest() if state else None)
        self.model.train()

    def _restore(self, state: TrainState, verify: bool) -> None:
        # The weights are read on the CPU and copied to the device; the optimizer moves its state to them.
        stored = ckpt.load_checkpoint(self.run.root, verify=verify)
        if stored.config != self.model.config:  # weights of another size or family than the run's settings say
            raise CheckpointError(f"{self.run.latest()} holds a {stored.name} model that is not the one "
                                  f"{self.run.training_config} describes; resume from the run's own checkpoints")
        self.model.load_state_dict(stored.state_dict())
        try:
            self.optimizer.load_state_dict(state.optimizer)
            self.schedule.load_state_dict(state.schedule)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"the optimizer state in {self.run.latest() / ckpt.TRAINER} does not fit this "
                                  f"model ({e}); resume from another checkpoint, or start a new run") from None
        torch.set_rng_state(state.torch_rng)

    def training_time(self) -> float:
        return self.trained_before + time.perf_counter() - self.started

    def micro_batches(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """This rank's slice of each micro-step of the global batch of ``step``, as in a single process."""
        index = batch_indices(step, len(self.train_data), self.config.batch_size, self.config.seed)
        labels = self.train_data.labels if self.model.settings.num_classes else None
        return [(to_device(self.train_data.images[part], self.device).long(),
                 None if labels is None else to_device(labels[part], self.device))
                for part in distributed.micro_batches(index, self.config.grad_accum)]

    def advance(self) -> None:
        """One optimizer step; its loss stays on the device until :meth:`read_loss`."""
        self.loss = train_step(self.net, self.optimizer, self.micro_batches(self.step), self.precision,
                               self.config.grad_clip, self.scaler)
        self.schedule.step()
        self.step += 1
        self.window_images += self.config.batch_size
        if self.step - self.first_step == 1:
            self.timed_from = time.perf_counter()  # the first step pays one-off costs; time the ones after it

    def estimate(self, stop_after: int | None) -> str | None:
        """Once the first steps are timed: how long the rest will take, if that is long enough to say."""
        if self.step - self.first_step != 1 + TIMED_STEPS or not self.main:
            return None
        per_step = (time.perf_counter() - self.timed_from) / TIMED_STEPS
        last = self.total_steps if stop_after is None else min(self.total_steps, self.first_step + stop_after)
        return estimate_line(per_step, last - self.step) if per_step * (last - self.step) >= LONG_RUN_SECONDS else None

    def read_loss(self, over_ranks: bool = True) -> None:
        """The last step's bits/dim into the result: the one host read of the training loop, made at the logging
        steps (and at the end), averaged over the ranks unless ``over_ranks`` is False (this rank's own figure)."""
        if self.loss is None:
            return
        bpd = float(self.loss)
        if over_ranks:
            bpd = distributed.sum_over_ranks(bpd)[0] / distributed.world_size()
        self.result.train_bits_per_dim = bpd
        self.result.train_nats_per_image = bpd * math.prod(self.model.image_shape) * math.log(2)
        self.loss = None

    def log_train(self) -> None:
        """Log the last window's images/s and this step's bits/dim."""
        self.read_loss()  # first: on a GPU it waits for the window's steps to finish, which the clock then covers
        self.result.images_per_s = self.window_images / (time.perf_counter() - self.window_start)
        if self.main:
            self.log.write(step=self.step, split="train", bits_per_dim=self.result.train_bits_per_dim,
                           images_per_s=round(self.result.images_per_s, 2), lr=self.schedule.get_last_lr()[0],
                           seconds=round(self.training_time(), 2), nats_per_image=self.result.train_nats_per_image)
        self.window_start, self.window_images = time.perf_counter(), 0

    def validate(self, limit: int | None) -> dict:
        """Bits/dim of the first ``limit`` validation images (all of them if None), logged."""
        images, labels = self.valid_data.images, self.valid_data.labels
        if limit is not None:
            images, labels = images[:limit], None if labels is None else labels[:limit]
        valid = evaluate(self.model, images, labels, batch_size=self.config.eval_batch_size,
                         precision=self.precision, compile=self.config.compile)
        valid["step"] = self.step
        if self.main:
            self.log.write(step=self.step, split="valid", bits_per_dim=valid["bits_per_dim"], images_per_s="",
                           lr="", seconds=round(self.training_time(), 2), nats_per_image=valid["nats_per_image"])
        self.result.valid = valid
        return valid

    def save(self) -> None:
        if not self.main:
            return
        state = TrainState(optimizer=self.optimizer.state_dict(), schedule=self.schedule.state_dict(),
                           step=self.step, torch_rng=torch.get_rng_state(), total_steps=self.total_steps,
                           lr_extended=self.extended, seconds=self.training_time())
        # The run's config keeps "auto" (a resume elsewhere decides again); the checkpoint says what this one ran.
        self.result.checkpoint = state.save(self.run, self.model, extra_config={"train": self.config.to_dict(),
                                                                                "precision": self.precision})

    def stop_reason(self, stop_after: int | None, time_limit: float | None, signalled: bool) -> str | None:
        """Why the loop stops after this step, or None to go on.

        Under torchrun every rank stops at the step where the first of them reaches the time limit or receives a
        stop signal: one all-reduce of both flags per step.
        """
        if stop_after is not None and self.step - self.first_step >= stop_after:
            return "stop_after"
        out_of_time = time_limit is not None and time.perf_counter() - self.started >= time_limit
        signalled, out_of_time = (total > 0 for total in distributed.sum_over_ranks(float(signalled),
                                                                                     float(out_of_time)))
        if signalled:
            return "terminated"
        return "time limit" if out_of_time else None

    def finish(self) -> None:
        """A checkpoint of the last step, the replicas' agreement, and a full validation when the run is done."""
        if self.result.checkpoint is None or self.result.checkpoint.name != self.run.step(self.step).name:
            self.save()
        distributed.check_replicas(self.model)
        if self.step >= self.total_steps:
            self.validate(None)

    def close(self) -> TrainResult:
        self.read_loss(over_ranks=False)  # after an interruption, which the ranks need not share
        if self.log is not None:
            self.log.close()
        if self.result.images_per_s is None and self.step > self.first_step:  # stopped before the first log step
            self.result.images_per_s = ((self.step - self.first_step) * self.config.batch_size
                                        / (time.perf_counter() - self.started))
        self.result.step = self.step
        return self.result


def train(config: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, time_limit: float | None = None,
          device: str | torch.device | None = None, verify: bool = True,
          threads: int | str | None = None) -> TrainResult:
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
        threads: intra-op threads on a CPU: a count, "fit" (the cores other processes leave free, looked at every
            few seconds: :mod:`pixelrnn.threads`; the floats then depend on the load), or None (torch's setting).
            The caller's setting is restored at the end.

    Returns:
        How it went (:class:`TrainResult`): the step reached, why it stopped, the last figures and checkpoint.
    """
    run = ckpt.RunFolder(run_dir)
    fitter = _thread_setting(threads)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    check_precision(config.precision, device)
    distributed.check_split(config.batch_size, config.grad_accum, distributed.world_size())
    launcher = distributed.follow_launcher()  # under torchrun: end with the launcher, even one killed outright
    main = distributed.is_main()
    new = main and not run.root.exists()
    # Rank 0, the one writer, holds the folder for the whole training: a second training there is refused. A new
    # run that fails before its first checkpoint leaves nothing behind: not its files, nor the folders made for it.
    with (no_empty_folders_on_failure(run.root) if main else nullcontext(),
          locked(run.root) if main else nullcontext(),
          num_threads(threads if isinstance(threads, int) else torch.get_num_threads())):
        try:
            return _train(config, run, resume, progress, stop_after, time_limit, device, verify, launcher,
                          fitter if device.type == "cpu" else None)
        except BaseException:
            if new and not run.has_checkpoint():
                _discard(run)
            raise


def _thread_setting(threads: int | str | None) -> ThreadFitter | None:
    """Check ``train``'s ``threads``; a :class:`ThreadFitter` for "fit"."""
    if threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        return None
    if threads == "fit":
        return ThreadFitter(torch.get_num_threads())
    raise ConfigError(f"threads must be a count of at least 1 or 'fit', not {threads!r}")


def _discard(run: ckpt.RunFolder) -> None:
    """Remove what a new run wrote before it failed: with no checkpoint it cannot be resumed, and a new run there
    would replace it. :func:`~pixelrnn.run_lock.locked` then removes the lock, and the folder once it is empty."""
    for path in (run.training_config, run.metrics):
        with suppress(OSError):  # whatever stays, the error that ended the run is the one to report
            path.unlink(missing_ok=True)
    for folder in (run.tensorboard, run.checkpoints):
        shutil.rmtree(folder, ignore_errors=True)


def _train(config: TrainConfig, run: ckpt.RunFolder, resume: bool, progress: bool, stop_after: int | None,
           time_limit: float | None, device: torch.device, verify: bool, launcher: int | None,
           fitter: ThreadFitter | None) -> TrainResult:
    """:func:`train` once the run folder is held."""
    check_run_folder(run, config, resume)
    data = _load_data(config)
    total_steps = config.total_steps(len(data[0]))
    state = TrainState.load(run.root) if resume else None
    if resume and state is None:
        raise CheckpointError(f"{run.latest()} has no {ckpt.TRAINER} (optimizer and step), so the run cannot be "
                              f"resumed exactly; start a new run with another --out")
    if state and state.step >= total_steps:  # nothing to train; the run and its files stay as they were
        return TrainResult(step=state.step, total_steps=total_steps, stopped="already finished",
                           checkpoint=run.latest())

    loop = TrainLoop(config, run, data, device, state, total_steps, verify)
    if loop.main:
        print("\n".join(first_lines(loop, state)), flush=True)
    # disable=None: no bar without a terminal (a log file or CI), where every redraw would be a line of its own;
    # under torchrun, rank 0's bar only.
    bar = tqdm(total=total_steps, initial=loop.step, desc="training", unit="step",
               disable=None if progress and loop.main else True)
    # SIGTERM or SIGUSR1: stop after this step, with a checkpoint. The handlers stay until the last checkpoint is
    # written: under torchrun a worker may see its launcher gone (and stop) just before the kernel's parent-death
    # SIGTERM arrives, which must not then kill it in the middle of that checkpoint.
    with StopSignals() as signals:
        try:
            _loop(loop, bar, stop_after, time_limit, signals, launcher, fitter)
            loop.finish()
        except KeyboardInterrupt:
            loop.save()  # an interrupted run resumes from where it stopped
            loop.result.stopped = "interrupted"
        finally:
            bar.close()
            result = loop.close()
    return result


def _loop(loop: TrainLoop, bar, stop_after: int | None, time_limit: float | None, signals: StopSignals,
          launcher: int | None, fitter: ThreadFitter | None = None) -> None:
    """Step until the run is done or told to stop (``launcher``: torchrun's PID, see :mod:`pixelrnn.distributed`;
    ``fitter``: the threads of ``--threads fit``)."""
    config, total_steps = loop.config, loop.total_steps
    while loop.step < total_steps:
        loop.advance()
        bar.update(1)
        if fitter is not None and (threads := fitter.between_steps()) is not None and loop.main:
            held = "other processes keep cores busy" if threads < fitter.most else "the other processes are gone"
            bar.write(f"step {loop.step}: {held}: training on {threads} of {fitter.most} threads")
        if (estimate := loop.estimate(stop_after)) is not None:
            bar.write(estimate)
        if loop.step % config.log_every == 0 or loop.step == total_steps:
            loop.log_train()
            bar.set_postfix(bpd=f"{loop.result.train_bits_per_dim:.4f}", img_s=f"{loop.result.images_per_s:.1f}")
        if config.eval_every and loop.step % config.eval_every == 0 and loop.step < total_steps:
            _report_validation(bar, loop.validate(config.eval_limit), loop)
        if loop.step % config.checkpoint_every == 0:
            loop.save()
        # A launcher that died without passing SIGTERM on (killed outright) stops the run as SIGTERM would.
        stop = signals.received is not None or distributed.launcher_gone(launcher)
        if (reason := loop.stop_reason(stop_after, time_limit, stop)) is not None:
            loop.result.stopped = reason
            break
    loop.read_loss()  # every rank ends the loop at the same step


def _report_validation(bar, valid: dict, loop: TrainLoop) -> None:
    if loop.main:
        nats = f", {valid['nats_per_image']:.2f} nats/image" if loop.model.levels == 2 else ""
        bar.write(f"step {loop.step}: valid bits/dim {valid['bits_per_dim']:.4f}{nats} "
                  f"(first {valid['images']} images)")
