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
from collections.abc import Callable
from typing import Any

import psutil

RESULT_PREFIX = "BENCHMARK-RESULT "
DEFAULT_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "eurosat_rgb")


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark shares: the data folder, batch size and loader workers."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=DEFAULT_ROOT, help="EuroSAT RGB folder")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
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


def run_variant(module: str, variant: str, args: list[str]) -> dict[str, Any]:
    """Run ``python -m module --variant variant *args`` and return its reported figures.

    Adds ``peak_rss_tree_mb``: the largest sum of RSS over the child and its workers, sampled every
    0.1 s (pages shared between processes, such as a memory-mapped cache, count once per process).
    """
    command = [sys.executable, "-m", module, "--variant", variant, *args]
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
