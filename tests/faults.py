"""Faults injected into a real `pixelrnn` process, for the tests of what a failure leaves behind.

Run as ``python tests/faults.py ARGS...`` (or as torchrun's script) instead of ``pixelrnn ARGS...``: it patches the
library as the environment says, then runs the command line. Nothing of this is in the package itself.

- ``PIXELRNN_TEST_FAIL_AT=RANK:STEP``: that rank raises when it fetches the batch of that step.
- ``PIXELRNN_TEST_SAVE_HOOK=NAME:MARKER``: the save of checkpoint NAME writes its weights, creates the file MARKER and
  waits, half-written, to be killed.
- ``PIXELRNN_TEST_SLOW_STEPS=SECONDS:MARKER``: every step waits SECONDS before it fetches its batch, and writes its
  step number into MARKER (rank 0), so that a test can signal a run in the middle.
- ``PIXELRNN_TEST_SIGNAL_IN_SAVE=NAME``: the save of checkpoint NAME, once its weights are written, sends this
  process SIGTERM and goes on: a signal that arrives while the last checkpoint is being written (as torchrun's
  parent-death signal can, after a worker has seen its launcher gone).
"""

import os
import sys
import time
from pathlib import Path

FAIL_ENV = "PIXELRNN_TEST_FAIL_AT"
SAVE_HOOK_ENV = "PIXELRNN_TEST_SAVE_HOOK"
SLOW_ENV = "PIXELRNN_TEST_SLOW_STEPS"
SIGNAL_IN_SAVE_ENV = "PIXELRNN_TEST_SIGNAL_IN_SAVE"


def fail_at(rank: int, step: int) -> None:
    from pixelrnn import distributed, train

    batch_indices = train.batch_indices

    def failing(at: int, *args, **kwargs):
        if distributed.rank() == rank and at == step:
            raise RuntimeError(f"test failure injected at step {step} ({FAIL_ENV}={rank}:{step})")
        return batch_indices(at, *args, **kwargs)

    train.batch_indices = failing


def slow_steps(seconds: float, marker: str) -> None:
    from pixelrnn import distributed, train

    batch_indices = train.batch_indices

    def slow(at: int, *args, **kwargs):
        time.sleep(seconds)
        if distributed.rank() == 0:
            Path(marker).write_text(f"{at}\n")
        return batch_indices(at, *args, **kwargs)

    train.batch_indices = slow


def hang_in_save(name: str, marker: str) -> None:
    from pixelrnn import checkpoint

    save_file = checkpoint.save_file

    def hanging(tensors, filename, *args, **kwargs):
        save_file(tensors, filename, *args, **kwargs)
        if Path(filename).parent.name.startswith(f".{name}.tmp-"):  # the temporary folder of checkpoint NAME
            Path(marker).touch()
            time.sleep(60)

    checkpoint.save_file = hanging


def signal_in_save(name: str) -> None:
    import signal

    from pixelrnn import checkpoint

    save_file = checkpoint.save_file

    def signalling(tensors, filename, *args, **kwargs):
        save_file(tensors, filename, *args, **kwargs)
        if Path(filename).parent.name.startswith(f".{name}.tmp-"):
            os.kill(os.getpid(), signal.SIGTERM)

    checkpoint.save_file = signalling


def main() -> int:
    if os.environ.get(FAIL_ENV):
        rank, step = (int(v) for v in os.environ[FAIL_ENV].split(":"))
        fail_at(rank, step)
    if os.environ.get(SLOW_ENV):
        seconds, _, marker = os.environ[SLOW_ENV].partition(":")
        slow_steps(float(seconds), marker)
    if os.environ.get(SIGNAL_IN_SAVE_ENV):
        signal_in_save(os.environ[SIGNAL_IN_SAVE_ENV])
    if os.environ.get(SAVE_HOOK_ENV):
        name, _, marker = os.environ[SAVE_HOOK_ENV].partition(":")
        hang_in_save(name, marker)
    from pixelrnn.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
