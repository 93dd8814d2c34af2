"""One training at a time per run folder: a lock on `<out>/.train.lock`.

Two trainings started on one fresh --out both passed the "checkpoint exists" check and then wrote
into the same log and checkpoints. The lock is an flock, so the kernel drops it when its process
ends in any way (SIGKILL included): no stale lock to clean up after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from training.errors import UserError

LOCK_NAME = ".train.lock"


def _is_main_rank() -> bool:
    # Under torchrun every rank runs main(); only rank 0 holds the lock, or rank 1 would refuse itself.
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def run_lock(out: Path, what: str) -> Iterator[None]:
    """Hold the lock of run folder `out` for a `what` training (e.g. "train_vae"); UserError naming
    the holder when another training has it."""
    if not _is_main_rank():
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise UserError(
                f"{out} is in use by another training ({holder}); wait for it to finish or choose "
                "another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what}, pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
