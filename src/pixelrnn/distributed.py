"""Data-parallel training and evaluation under torchrun, with PyTorch's own DistributedDataParallel.

    torchrun --standalone --nproc_per_node=N -m pixelrnn train ...                 # one machine, N processes
    torchrun --nnodes=M --node_rank=R --nproc_per_node=N \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT -m pixelrnn train ...    # M machines

Every rank runs the same training loop. ``--batch-size`` is the global batch of one optimizer step; it is cut into
``--grad-accum`` micro-batches, and each micro-batch into one fixed slice per rank:

    global batch (B images, the same as a single process would use at this step)
    | micro-step 0                    | micro-step 1                    |   K = grad_accum micro-steps
    | rank 0 | rank 1 | ... | rank W-1| rank 0 | rank 1 | ... | rank W-1|   B / (K W) images per slice

So the sequence of global batches does not depend on the number of ranks or micro-steps, and neither does the
gradient: each slice's mean loss is divided by K, and DDP averages over the W ranks, which gives the mean over the
B images. Evaluation splits the images into W contiguous parts and adds float64 sums, so no image is dropped or
counted twice.

Backends: nccl on CUDA, gloo on the CPU. The process group has a timeout (``PIXELRNN_DIST_TIMEOUT`` seconds,
default 600), so a rank that waits for a dead peer ends instead of hanging; torchrun ends the others when one fails.

A worker also ends when its launcher dies. torchrun passes SIGTERM on to its workers, but a launcher killed outright
(SIGKILL, the out-of-memory killer, a lost SSH session) says nothing, and the workers, which talk to each other
directly once the group is formed, would train on to the end unseen, holding the run folder. So each worker asks the
kernel for SIGTERM when its parent (the launcher) dies (Linux's parent-death signal), and the training loop also
checks each step that its parent is still the launcher (every system); either way the run stops as on SIGTERM, with
a checkpoint to resume from (:mod:`pixelrnn.signals`).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from .checkpoint import weights_sha256
from .devices import resolve_device
from .errors import ConfigError

TIMEOUT_ENV = "PIXELRNN_DIST_TIMEOUT"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def under_torchrun() -> bool:
    """True in a worker started by torchrun (its elastic agent, the worker's parent, sets TORCHELASTIC_RUN_ID)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def follow_launcher() -> int | None:
    """Under torchrun, have this worker end when its launcher dies; outside it, do nothing.

    On Linux the kernel is asked to send this process SIGTERM when its parent dies. The parent may die just before
    the request, when no signal would come: the parent is read before and after it, and if it changed the SIGTERM is
    sent here at once. Calling this again is harmless.

    Returns:
        The launcher's PID, for :func:`launcher_gone`; None outside torchrun.
    """
    if not under_torchrun():
        return None
    launcher = os.getppid()
    if sys.platform.startswith("linux"):
        # Should the call fail (it does not, for a valid signal), the training loop's check of the parent remains.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != launcher:
            os.kill(os.getpid(), signal.SIGTERM)
    return launcher


def launcher_gone(launcher: int | None) -> bool:
    """Whether the launcher :func:`follow_launcher` returned has died (this process was handed to another parent)."""
    return launcher is not None and os.getppid() != launcher


def launched() -> bool:
    """True when this process was started by torchrun (or another launcher that sets WORLD_SIZE) with >1 process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank: from the process group, or from torchrun's environment before and after it."""
    if active():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one process that writes checkpoints, metrics and progress bars."""
    return rank() == 0


@contextmanager
def session(device: str | None = "auto"):
    """Join the torchrun job around a command (when launched by torchrun), and leave it at the end.

    Yields:
        The device this process computes on: ``cuda:LOCAL_RANK`` under torchrun on GPUs.
    """
    follow_launcher()
    device = resolve_device(device)
    if not launched() or active():
        yield device
        return
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "600")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    try:
        yield device
    except SystemExit as e:
        # sys.exit(0) inside the block is a normal end. Leaving gloo's worker threads alive into interpreter
        # shutdown can abort the process (SIGABRT) after its work is done, so say goodbye here as well.
        if e.code in (None, 0):
            _leave()
        raise
    # On any other exception the process ends without a goodbye: the peers may be gone or stuck.
    _leave()


def _leave() -> None:
    # DistributedDataParallel's reducer sits in reference cycles; collected only at interpreter shutdown, after the
    # group is gone, its destructor can abort the process. Collect it while the group is alive.
    gc.collect()
    dist.destroy_process_group()


def micro_batches(indices: torch.Tensor, grad_accum: int) -> list[torch.Tensor]:
    """This rank's slice of each micro-step of one global batch (see the module docstring).

    Raises:
        ConfigError: when the global batch does not divide into grad_accum x world_size equal slices.
    """
    ranks = world_size()
    check_split(len(indices), grad_accum, ranks)
    per_slice = len(indices) // (grad_accum * ranks)
    me = rank()
    return [micro[me * per_slice:(me + 1) * per_slice] for micro in indices.split(per_slice * ranks)]


def check_split(batch_size: int, grad_accum: int, ranks: int) -> None:
    if grad_accum < 1:
        raise ConfigError(f"--grad-accum must be at least 1, not {grad_accum}")
    if batch_size % (grad_accum * ranks):
        raise ConfigError(f"the global batch of {batch_size} images does not split into {ranks} rank(s) x "
                          f"{grad_accum} micro-step(s); choose a batch size divisible by {grad_accum * ranks} "
                          f"or another number of processes")


def shard(n: int) -> slice:
    """This rank's contiguous part of ``n`` items: sizes differ by at most one, and the parts cover 0..n-1 once."""
    ranks, me = world_size(), rank()
    return slice(me * n // ranks, (me + 1) * n // ranks)


def sum_over_ranks(*values: float) -> tuple[float, ...]:
    """Add float64 values over all ranks (every rank gets the totals); the identity in a single process."""
    if not active():
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return tuple(total.tolist())


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is True on any (so that all ranks stop at the same step)."""
    return sum_over_ranks(float(flag))[0] > 0


def barrier() -> None:
    if active():
        dist.barrier()


def local_rank() -> int:
    """This process's rank on its own machine (torchrun's LOCAL_RANK); 0 in a single process."""
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


@contextmanager
def local_main_first():
    """Run the block on each machine's first rank, then on its others.

    A data set's first load downloads it, or decodes it into a cache beside its source
    (:mod:`pixelrnn.data.cache`); the other ranks wait, then find it ready instead of all doing the same work at
    once. Every rank passes one barrier: the first ones after the block, the others before it.
    """
    if not active():
        yield
        return
    first = local_rank() == 0
    if not first:
        dist.barrier()
    yield
    if first:
        dist.barrier()


def check_replicas(model: torch.nn.Module) -> None:
    """Raise if the ranks' weights differ by a single bit (they must: DDP gives every rank the same update)."""
    if not active():
        return
    digests = [None] * world_size()
    dist.all_gather_object(digests, weights_sha256(model.state_dict()))
    if len(set(digests)) != 1:
        raise RuntimeError(f"the ranks' weights differ after training (digests {digests}); this is a bug")


def where() -> str:
    """" (rank R of W)" under torchrun, for messages; "" in a single process."""
    return f" (rank {os.environ.get('RANK', '?')} of {os.environ['WORLD_SIZE']})" if launched() else ""


def describe_failure(error: BaseException) -> str:
    """One line for an unexpected error in a rank: what went wrong, and where."""
    first = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, dist.DistError) or "Connection closed by peer" in first or "Connection reset" in first:
        return (f"stopped{where()}: lost contact with another rank, which most likely failed (see its message; "
                f"{type(error).__name__})")
    return f"failed{where()}: {type(error).__name__}: {first}"
