"""Shared plumbing of the benchmarks: one child process per variant, its peak memory, printed figures.

Every variant runs in a fresh Python process, one after another, so each starts cold, none competes
with another for the CPU, and each one's peak RSS (the process plus its DataLoader workers) is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psutil

RESULT_PREFIX = "BENCHMARK-RESULT "
DEFAULT_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "eurosat_rgb")


def benchmark_parser(
    doc: str | None,
    variants: Iterable[str],
    *,
    root: str | None = DEFAULT_ROOT,
    root_help: str = "EuroSAT RGB folder",
    batch_size: int | None = 128,
    threads: int | None = None,
    cache_dir: bool = True,
    runs_dir: bool = False,
) -> argparse.ArgumentParser:
    """The options the benchmarks share, and the hidden ``--variant`` that a child process runs.

    Every benchmark takes ``--root`` and ``--workers``; the others are left out where a benchmark has
    no use for them.

    Args:
        doc: the benchmark's docstring, shown by ``--help``.
        variants: what ``--variant`` may name (``run_variant``).
        root: the default data folder; None makes ``--root`` required.
        root_help: what ``--root`` is.
        batch_size: the default ``--batch-size``; None leaves it out.
        threads: the default ``--threads`` (torch threads of the main process); None leaves it out.
        cache_dir: take ``--cache-dir``, an imgcls cache to reuse.
        runs_dir: take ``--runs-dir``, where to keep the imgcls run folders.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=root, required=root is None, help=root_help)
    parser.add_argument("--workers", type=int, default=2, help="imgcls loader workers")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=int, default=batch_size)
    if threads is not None:
        parser.add_argument("--threads", type=int, default=threads, help="torch threads of the main process")
    if cache_dir:
        parser.add_argument(
            "--cache-dir", default=None, help="reuse this imgcls cache; default: build a fresh one"
        )
    if runs_dir:
        parser.add_argument("--runs-dir", default=None, help="keep the imgcls run folders here")
    parser.add_argument("--variant", choices=sorted(variants), help=argparse.SUPPRESS)
    return parser


def report(result: dict[str, Any]) -> None:
    """Print a variant's figures for the parent process, with this process's own peak RSS."""
    result["peak_rss_main_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def run_variant(module: str, variant: str, args: list[str] | None = None) -> dict[str, Any]:
    """Run ``python -m module --variant variant *args`` and return its reported figures.

    ``args`` defaults to the options this process was started with: the child parses them with the
    same parser, so it sees the same settings, defaults included.

    Adds ``peak_rss_tree_mb``: the largest sum of RSS over the child and its workers, sampled every
    0.1 s (pages shared between processes, such as a memory-mapped cache, count once per process).
    """
    command = [sys.executable, "-m", module, "--variant", variant, *(sys.argv[1:] if args is None else args)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    process = psutil.Process(child.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, _tree_rss(process))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"variant {variant} failed with exit code {child.returncode}")
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise SystemExit(f"variant {variant} printed no result")
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["peak_rss_tree_mb"] = peak / 2**20
    return result


def print_table(title: str, rows: list[tuple[str, dict[str, Any]]], fields: list[tuple[str, str]]) -> None:
    """Print one row per variant with the chosen ``(key, label)`` fields."""
    print(f"\n{title}")
    print(
        f"  cpu cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.2f} (shared machine)"
    )
    for name, result in rows:
        parts = []
        for key, label in fields:
            value = result.get(key)
            parts.append(f"{label} {value:,.1f}" if isinstance(value, int | float) else f"{label} {value}")
        print(f"  {name:<24} " + ", ".join(parts))


def time_batches(batches: Any, count: int, warmup: int, work: Callable[[Any], int]) -> tuple[float, int]:
    """Seconds and images for ``count`` batches after ``warmup`` batches of ``batches``.

    ``work`` consumes one batch and returns its number of images.
    """
    iterator = iter(batches)
    for _ in range(warmup):
        work(next(iterator))
    images = 0
    start = time.perf_counter()
    for _ in range(count):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(batches)
            batch = next(iterator)
        images += work(batch)
    return time.perf_counter() - start, images
