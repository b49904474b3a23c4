"""Checkpoint files written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from imgcls.errors import DiskFullError
from imgcls.storage import is_full, room_note

PARTIAL = ".partial-"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file beside it, then rename it into place.

    Lightning's own writer stages the file in the system's temporary folder and moves it over: a
    process killed meanwhile leaves a partial file there, and a move across file systems is a copy that
    a kill can cut short. Here a kill leaves the previous ``last.ckpt`` whole and at most a
    ``last.ckpt.partial-<pid>`` beside it, which the next save of that file removes. Paths with a
    scheme (``s3://``) go through Lightning's writer. A disk that fills up while writing ends the run in
    one line (``DiskFullError``) that says where, how much room is left, and which checkpoints are intact.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{path.name}{PARTIAL}*"):
            stale.unlink(missing_ok=True)  # left by a process killed while writing this file
        partial = path.with_name(f"{path.name}{PARTIAL}{os.getpid()}")
        try:
            with partial.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException as err:
            partial.unlink(missing_ok=True)
            if is_full(err):
                intact = sorted(p.name for p in path.parent.glob("*.ckpt"))
                then = "resume it with --ckpt_path last" if "last.ckpt" in intact else "run it again"
                raise DiskFullError(
                    f"cannot write the checkpoint {path}: {room_note(path.parent)}. The checkpoints already "
                    f"written are intact ({', '.join(intact) or 'none yet'}); free some space, or give the run "
                    f"a folder on another disk (--runs_dir), then {then}"
                ) from None
            raise
