"""The signals a cluster sends before it ends a job, caught so that training stops with a checkpoint.

Training a model of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) at the paper's sizes takes
days, and on a shared cluster a job is often preempted: the scheduler sends SIGTERM (Slurm, Kubernetes, torchrun's
own agent passing it on), some send SIGUSR1 first as a warning, and kill the job a little later. Left to its default,
SIGTERM ends the process at once and the work since the last checkpoint is lost. While :class:`StopSignals` is
active, either signal only sets a flag; the training loop reads it after each step, all ranks agree on it, and the
run stops as it does on Ctrl-C: a checkpoint, the command to resume, and exit status 143 (128 + SIGTERM, what a
scheduler expects of a process that ended on SIGTERM).
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = ("SIGTERM", "SIGUSR1")  # by name: SIGUSR1 does not exist on every platform
EXIT_STATUS = 128 + signal.SIGTERM


class StopSignals:
    """A context in which SIGTERM and SIGUSR1 ask the training loop to stop, instead of killing the process.

    ``received`` is the name of the first such signal, or None. Outside the main thread (where Python cannot set
    handlers) nothing changes. The previous handlers come back on exit.
    """

    def __init__(self):
        self.received: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                number = getattr(signal, name, None)
                if number is not None:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
