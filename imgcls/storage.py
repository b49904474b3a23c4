"""Room to run: free space, file-size limits, and telling a full disk or exhausted memory from other errors."""

from __future__ import annotations

import errno
import resource
import shutil
from pathlib import Path

# errno of a write that failed for lack of room: no space, a file-size limit (ulimit -f), a quota
FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def format_bytes(count: float) -> str:
    """``1.2 GB``, ``48.0 MB``, ``512 B``."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


def free_bytes(folder: Path) -> int:
    """Bytes this process may still write below ``folder``: the disk's free space, or the file-size
    limit when that is lower."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return free if limit == resource.RLIM_INFINITY else min(free, limit)


def room_note(folder: Path) -> str:
    """What limits writing below ``folder``, as a clause of a message."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    note = f"{existing} has {format_bytes(shutil.disk_usage(existing).free)} free"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        note += f" and files are limited to {format_bytes(limit)} (ulimit -f)"
    return note


def is_full(error: BaseException) -> bool:
    """Whether a write failed for lack of room: an OSError of ``FULL``, or torch's zip writer failing
    (it reports a short write as ``[enforce fail at inline_container.cc]``)."""
    if isinstance(error, OSError):
        return error.errno in FULL
    return isinstance(error, RuntimeError) and "inline_container" in str(error)


def out_of_memory(error: BaseException) -> bool:
    """Whether an error is an allocation that failed: Python's MemoryError, CUDA's out-of-memory error,
    or torch's CPU allocator giving up (``DefaultCPUAllocator: can't allocate memory``)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in str(error) or "CUDA out of memory" in str(error)
    )
