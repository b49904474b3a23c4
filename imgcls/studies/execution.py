"""Running a study's runs: what is left of each, and the ``imgcls fit``/``test`` processes that do it.

A run whose test report exists is skipped; one whose fit was cut short resumes from its newest
checkpoint in the same ``version_N``; a run whose fit finished is only tested. So a sweep restarted
after a crash, a ``kill`` or a Slurm requeue does only what is left. Each run is a process of its own
(the same commands a person would type), ended with the sweep when the sweep is stopped or killed.
"""

from __future__ import annotations

import enum
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from imgcls import runs
from imgcls.errors import ConfigError
from imgcls.studies.grid import GridRun, Sweep


class State(enum.Enum):
    """What is left of a run."""

    FIT = "fit"  # nothing to continue from
    RESUME = "resume"  # a fit cut short, with a checkpoint
    TEST = "test"  # the fit finished, the test is missing
    DONE = "done"  # tested (or fit finished, where the sweep tests nothing)


class Outcome(enum.Enum):
    """How one execution of a run ended."""

    DONE = "done"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped by an optuna pruner (``imgcls.studies.search``)


def run_folder(sweep: Sweep, run: GridRun) -> Path | None:
    """The ``version_N`` of a run that the sweep continues: the newest that holds a checkpoint."""
    for version in reversed(runs.version_dirs(sweep.folder / run.name)):
        if (
            runs.resume_checkpoint(version) is not None
            or (version / runs.CHECKPOINTS / "best.ckpt").is_file()
        ):
            return version
    return None


def run_state(sweep: Sweep, run: GridRun) -> tuple[State, Path | None]:
    """What is left of a run, with its run folder."""
    folder = run_folder(sweep, run)
    if folder is None:
        return State.FIT, None
    if runs.fit_finished(folder):
        if sweep.test is None or (folder / runs.TEST_METRICS).is_file():
            return State.DONE, folder
        return State.TEST, folder
    return State.RESUME, folder


def test_accuracy(folder: Path | None) -> float | None:
    """``test_acc`` of a run folder's test report; None when it has none."""
    try:
        value = json.loads((folder / runs.TEST_METRICS).read_text()).get("test_acc") if folder else None
    except (OSError, ValueError):
        return None
    return float(value) if isinstance(value, int | float) else None


def cores() -> int:
    """CPU cores this process may use (its affinity, so a Slurm allocation's cores)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def slurm_task_threads() -> int | None:
    """The cores Slurm gave this task (``--cpus-per-task``), None outside Slurm or when not set."""
    value = os.environ.get("SLURM_CPUS_PER_TASK")
    return int(value) if value else None


def format_duration(seconds: float) -> str:
    """``1m05s``, ``2h03m10s``."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def command_line(command: str, run: GridRun, threads: int | None, ckpt_path: Path | None = None) -> list[str]:
    """The process of one step of a run: ``python -m imgcls fit|test`` with the run's arguments."""
    args = [sys.executable, "-m", "imgcls", command, *run.args]
    if threads:
        args += ["--threads", str(threads)]
    if ckpt_path is not None:
        args += ["--ckpt_path", str(ckpt_path)]
    return args


# --- supervision: no run outlives the sweep ----------------------------------------------------

_children: set[subprocess.Popen] = set()


def _die_with_parent() -> None:
    """In a run's process: end when the sweep does, even killed outright (Linux's parent-death signal)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_runs_on_sigterm() -> None:
    """A sweep stopped with SIGTERM (``kill``, a scheduler) stops its runs first: none is left training."""

    def stop(signum: int, frame: Any) -> None:
        for child in list(_children):
            child.terminate()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def keep_alive_on_requeue_signal() -> None:
    """In a Slurm task: Lightning's requeue signal (SIGUSR1) reaches this process too, as Slurm signals
    every process of the job step; ignoring it keeps the task alive for the fit that handles it."""
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)


def _call(args: list[str], env: dict[str, str], output: IO[str] | None) -> int:
    child = subprocess.Popen(
        args,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    _children.add(child)
    try:
        return child.wait()
    finally:
        _children.discard(child)


# --- one run ------------------------------------------------------------------------------------


def execute(
    sweep: Sweep,
    run: GridRun,
    total: int,
    threads: int | None = None,
    log_file: Path | None = None,
    test_if: Callable[[Path], bool] | None = None,
) -> Outcome:
    """Do what is left of one run (fit or resume, then test), its output appended to ``log_file``
    (or inherited when None).

    Args:
        sweep: the sweep the run belongs to.
        run: the run.
        total: how many runs the sweep has (for the ``[i/total]`` tag of its lines).
        threads: torch threads of each process (None: one per core).
        log_file: where the processes' output goes; None to inherit this process's.
        test_if: called with the run folder after the fit; False skips the test (a pruned trial).
    """
    state, folder = run_state(sweep, run)
    tag = f"[{run.index + 1}/{total}] {run.name}"
    if state is State.DONE:
        print(f"{tag}: already done ({folder})", flush=True)
        return Outcome.DONE
    started = time.perf_counter()
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    output = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        output = log_file.open("a")
    try:
        steps = ["test"] if state is State.TEST else ["fit", "test"]
        if sweep.test is None:
            steps = [s for s in steps if s != "test"]
        where = f" (log {log_file})" if log_file is not None else ""
        what = "fit" if state is State.FIT else f"{state.value} {folder}"
        print(f"{tag}: {what}{where}", flush=True)
        for step in steps:
            if step == "fit":
                ckpt = (
                    runs.resume_checkpoint(folder) if state is State.RESUME and folder is not None else None
                )
                args = command_line("fit", run, threads, ckpt)
            else:
                folder = run_folder(sweep, run)
                if test_if is not None and folder is not None and not test_if(folder):
                    break
                checkpoint = folder / runs.CHECKPOINTS / f"{sweep.test}.ckpt" if folder is not None else None
                if checkpoint is None or not checkpoint.is_file():
                    print(f"{tag}: failed: its fit left no {sweep.test}.ckpt to test", flush=True)
                    return Outcome.FAILED
                args = command_line("test", run, threads, checkpoint)
            if output is not None:
                output.write(f"$ {shlex.join(args)}\n")
                output.flush()
            code = _call(args, env, output)
            if code != 0:
                print(f"{tag}: failed: `imgcls {step}` exited with {code}{where}", flush=True)
                return Outcome.FAILED
    finally:
        if output is not None:
            output.close()
    folder = run_folder(sweep, run)
    score = test_accuracy(folder)
    result = f", test_acc {score:.4f}" if score is not None else ""
    print(f"{tag}: done in {format_duration(time.perf_counter() - started)}{result} ({folder})", flush=True)
    return Outcome.DONE


def run_here(sweep: Sweep, grid: list[GridRun], parallel: int = 1) -> dict[str, Outcome]:
    """Run the grid on this machine, ``parallel`` runs at a time, each with its share of the cores.

    Returns:
        Run name -> how it ended.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be 1 or more, got {parallel}")
    threads = max(1, cores() // parallel) if parallel > 1 else None

    def one(run: GridRun) -> tuple[str, Outcome]:
        return run.name, execute(sweep, run, len(grid), threads, sweep.logs / f"{run.name}.log")

    if parallel == 1:
        return dict(one(run) for run in grid)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return dict(pool.map(one, grid))


def run_task(sweep: Sweep, grid: list[GridRun], index: int) -> Outcome:
    """One run of the grid, as a task of a Slurm job array does (``--task $SLURM_ARRAY_TASK_ID``)."""
    if not 0 <= index < len(grid):
        raise ConfigError(f"--task {index}: the sweep has runs 0 to {len(grid) - 1}")
    keep_alive_on_requeue_signal()
    return execute(sweep, grid[index], len(grid), slurm_task_threads())


def describe(sweep: Sweep, grid: list[GridRun]) -> str:
    """The plan: each run, its state and its axes' values."""
    lines = [f"sweep {sweep.name}: {len(grid)} runs into {sweep.folder}"]
    for run in grid:
        state, _ = run_state(sweep, run)
        lines.append(f"  {run.index:>3}  {state.value:<6}  {run.name}")
    return "\n".join(lines)
