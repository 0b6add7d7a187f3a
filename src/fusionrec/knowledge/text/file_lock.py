"""An exclusive inter-process lock on a file (``fcntl.flock``), for work that two processes must not do at once:
compacting an embedding cache, exporting an ONNX model.

The lock is held by an open file descriptor, so the operating system releases it when the holder exits or
crashes: a killed process never leaves a stale lock behind. Where ``fcntl`` does not exist (Windows) the lock is
a no-op; the cache's writes stay safe there (unique shard names), only two concurrent compactions could race.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (created when missing, never deleted) for the block; waits for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (not POSIX)
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
