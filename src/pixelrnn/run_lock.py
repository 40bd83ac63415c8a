"""One training at a time in a run folder: an advisory lock held for the length of a training.

Two ``pixelrnn train --resume`` on one folder would each rename the metrics file and append to their own handle, and
write checkpoints over each other's: a run that reports success with rows and steps missing. The first training
holds an exclusive ``flock`` on ``RUN/.lock`` (and writes its PID there); a second is refused in one line that names
that process. The kernel releases the lock when its process ends, however it ends, so a lock left by a killed or
crashed process is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, writing

LOCK = ".lock"


@contextmanager
def locked(root: str | Path):
    """Hold the run folder ``root`` for one training (created if needed; removed again if the block fails and it
    holds nothing but the lock, so that a failed first command leaves no empty folder behind).

    Raises:
        ConfigError: another process trains in the folder.
    """
    root = Path(root)
    created = not root.exists()
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o666)  # unbuffered: nothing left to flush on close
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(f"{root} is being trained by another process (PID {holder}); wait for it to end, or "
                              f"stop it (kill {holder}: it saves a checkpoint) before training here") from None
        ok = False
        try:
            with writing(root / LOCK):  # the holder's PID, for the message of a second training
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield root
            ok = True
        finally:
            if not ok and created and [p.name for p in root.iterdir()] == [LOCK]:
                (root / LOCK).unlink()
                root.rmdir()
    finally:
        os.close(fd)
