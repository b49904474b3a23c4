"""Faults of the machine under a run: a full disk (a file-size limit stands in for it), memory running
out, each ending in one line with its own exit status and nothing half-written. SIGTERM: test_run_folders."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lightning.pytorch import Callback, LightningModule, Trainer

from imgcls.commands import main
from imgcls.data.cache import build_cache
from imgcls.data.datasets import ArrayImageDataset
from imgcls.errors import DiskFullError
from imgcls.storage import out_of_memory
from tests.conftest import REPO
from tests.test_cli import CONFIG, TINY


def run_limited(code: str, fsize: int) -> subprocess.CompletedProcess:
    """Python ``code`` in a process that may write no file larger than ``fsize`` bytes (``ulimit -f``)."""
    limit = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize}, {fsize}))\n"
    return subprocess.run(
        [sys.executable, "-c", limit + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_cache_without_room_is_refused_before_a_byte_is_written(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = f"""
        import numpy as np
        from pathlib import Path
        from imgcls.data.cache import build_cache
        from imgcls.data.datasets import ArrayImageDataset
        from imgcls.errors import DiskFullError
        images = np.zeros((50, 64, 64, 3), dtype=np.uint8)
        try:
            build_cache(ArrayImageDataset(images, [0] * 50, 3), Path({str(cache / "x.npy")!r}))
        except DiskFullError as err:
            print(err)
    """
    done = run_limited(code, 100_000)  # 50 images of 12 kB need 614 kB
    assert done.returncode == 0, done.stderr
    assert "the decoded-image cache x.npy needs 618.5 kB" in done.stdout
    assert (
        "files are limited to 100.0 kB (ulimit -f)" in done.stdout
        and "data.init_args.cache_dir" in done.stdout
    )
    assert list(cache.iterdir()) == []  # no partial file, no lock file


def test_a_cache_build_leaves_nothing_when_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imgcls.data.cache as cache_module

    monkeypatch.setattr(cache_module, "free_bytes", lambda folder: 10)
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    (tmp_path / "x.npy.12345678.tmp").write_bytes(b"left by a process killed outright")
    with pytest.raises(DiskFullError, match=r"needs 4\.9 kB"):
        build_cache(ArrayImageDataset(images, [0] * 4, 3), tmp_path / "x.npy")
    assert list(tmp_path.iterdir()) == []  # the dead process's partial file is gone too


def test_a_checkpoint_that_cannot_be_written_names_the_room_and_the_intact_ones(tmp_path: Path) -> None:
    (tmp_path / "best.ckpt").write_bytes(b"an earlier checkpoint")
    code = f"""
        import torch
        from imgcls.checkpoint_io import AtomicCheckpointIO
        from imgcls.errors import DiskFullError
        try:
            AtomicCheckpointIO().save_checkpoint({{"w": torch.zeros(100_000)}}, {str(tmp_path / "last.ckpt")!r})
        except DiskFullError as err:
            print(err)
    """
    done = run_limited(code, 50_000)
    assert done.returncode == 0, done.stderr
    assert f"cannot write the checkpoint {tmp_path / 'last.ckpt'}" in done.stdout
    assert "files are limited to 50.0 kB" in done.stdout and "intact (best.ckpt)" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt"]  # no partial file
    assert (tmp_path / "best.ckpt").read_bytes() == b"an earlier checkpoint"


def test_a_fit_whose_checkpoint_fills_the_disk_ends_in_one_line(eurosat_root: Path, tmp_path: Path) -> None:
    args = ["--config", CONFIG, f"--runs_dir={tmp_path}", f"--data.init_args.root={eurosat_root}", *TINY]
    args += [f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--trainer.max_epochs=2"]
    code = f"""
        from imgcls.commands import main
        main(["fit", *{args!r}])
    """
    done = run_limited(code, 1_000_000)  # the tiny model's checkpoint is 4.5 MB
    assert done.returncode == 3, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("imgcls: error: cannot write the checkpoint") and "Traceback" not in done.stderr
    )
    assert not list(tmp_path.rglob("*.partial-*"))


def test_memory_running_out_names_the_batch_and_the_fixes(
    eurosat_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgcls.models.classifier import ImageClassifier

    def too_big(self: ImageClassifier, batch: object, batch_idx: int) -> None:
        raise RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes."
        )

    monkeypatch.setattr(ImageClassifier, "training_step", too_big)
    args = ["--config", CONFIG, f"--runs_dir={tmp_path}", f"--data.init_args.root={eurosat_root}", *TINY]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args])
    assert exit_info.value.code == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("imgcls: error: out of memory with data.init_args.batch_size 8 at image_size 32")
    assert "--trainer.accumulate_grad_batches" in err and "BatchSizeFinder" in err


def test_only_allocation_failures_count_as_out_of_memory() -> None:
    import torch

    assert out_of_memory(MemoryError()) and out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried"))
    assert out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


class OutOfMemoryOnce(Callback):
    """In the run whose folder names ``run`` (``seed=1``), an allocation that fails in epoch 1, once
    (while ``marker`` exists): a fault of the machine that a second try does not meet."""

    def __init__(self, marker: str = "", run: str = "seed=1") -> None:
        self.marker, self.run = Path(marker), run

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == 1 and self.run in str(trainer.log_dir) and self.marker.is_file():
            self.marker.unlink()
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes."
            )


def test_a_sweep_reports_the_run_a_fault_hit_and_a_rerun_resumes_it(
    eurosat_root: Path, tmp_path: Path
) -> None:
    from tests.test_sweep import sweep_process, tiny_fixed, write_sweep

    marker = tmp_path / "fault-once"
    marker.touch()
    path = write_sweep(tmp_path, axes={"seed_everything": [0, 1]}, fixed=tiny_fixed(eurosat_root))
    extra = [
        "--",
        "--trainer.callbacks+=tests.test_faults.OutOfMemoryOnce",
        f"--trainer.callbacks.marker={marker}",
    ]
    first = sweep_process(path, *extra)
    assert first.returncode == 1, first.stderr[-2000:]
    assert "[2/2] seed=1: failed: `imgcls fit` exited with 4" in first.stdout
    assert "1 runs failed" in first.stderr and "seed=1" in first.stderr
    log = (tmp_path / "runs" / "study" / "logs" / "seed=1.log").read_text()
    assert "imgcls: error: out of memory with data.init_args.batch_size 8" in log and "Traceback" not in log
    assert "[1/2] seed=0: done" in first.stdout  # the other run finished
    again = sweep_process(path, *extra)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "seed=0: already done" in again.stdout and "seed=1: resume" in again.stdout
    assert "[2/2] seed=1: done" in again.stdout


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 5 MB tmpfs (root only, as CI is): a disk that really fills up."""
    import os

    folder = tmp_path / "tmpfs"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_cache_on_a_full_tmpfs_is_refused_and_leaves_it_empty(small_tmpfs: Path) -> None:
    images = np.zeros((500, 64, 64, 3), dtype=np.uint8)  # 6.1 MB
    with pytest.raises(DiskFullError, match=r"needs 6\.1 MB in .* has 5\.2 MB free"):
        build_cache(ArrayImageDataset(images, [0] * 500, 3), small_tmpfs / "x.npy")
    assert list(small_tmpfs.iterdir()) == []


def test_a_fit_under_an_address_space_limit_names_the_batch(eurosat_root: Path, tmp_path: Path) -> None:
    """A real allocation failure: ``RLIMIT_AS`` (6 GiB, room for torch itself) and a batch of 256 images
    at 512 px, whose activations do not fit."""
    import resource

    limit = 6 * 2**30

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    args = ["--config", CONFIG, f"--runs_dir={tmp_path}", f"--data.init_args.root={eurosat_root}", *TINY]
    args += [
        "--data.init_args.batch_size=256",
        "--data.init_args.image_size=512",
        "--data.init_args.cache=never",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "imgcls", "fit", *args, "--trainer.max_epochs=1"],
        preexec_fn=limited, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "imgcls: error: out of memory with data.init_args.batch_size 256 at image_size 512"
    )
    assert "Traceback" not in done.stderr
