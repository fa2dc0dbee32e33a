"""One batch at a time per output folder and shard: a second `genimg batch` into the same folder (the same
share of it) would plan the same pending jobs, make each twice and record it twice. The lock lives in
genimg's state folder, keyed by the folder and the shard, so the user's folder gets no file of it, and the
system releases it when the process ends however it ends."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

from genimg.errors import UsageError


@contextmanager
def batch_lock(folder: Path, shard: tuple[int, int]):
    """Hold the lock of ``folder``'s ``shard`` (index, count) for the block; refuse at once when another
    process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one batch per folder is up to the user
        yield
        return
    from genimg.paths import state_dir

    index, count = shard
    key = hashlib.sha256(f"{Path(folder).resolve()}|{index}/{count}".encode()).hexdigest()[:16]
    path = state_dir() / "batch-locks" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            share = f" (shard {index}/{count})" if count > 1 else ""
            raise UsageError(f"another genimg batch ({holder}) is writing into {folder}{share}; wait for it to "
                             "finish (then run this again to add what it left), or choose another -o") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
