"""Inference speed of one checkpoint in three runtimes, side by side: eager PyTorch (``Predictor`` of the
checkpoint), the ``torch.export`` program and the ONNX model (onnxruntime) that ``imgcls export`` writes.

    python -m benchmarks.bench_inference --ckpt runs/eurosat_sample/version_0

Each runtime gets the same uint8 batches, decoded once beforehand (the figures are the model's, with
its preprocessing, not the JPEG decoding); batch sizes 1 and 64 by default. Per batch size and runtime:
images per second and the latency of one call, median and 99th percentile, over ``--repeats`` calls
after ``--warmup``. The runtimes take turns call by call, so that a change in the machine's load
touches all of them alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from imgcls.inference import Predictor, export_model
from imgcls.inference.export import default_check_images
from imgcls.inference.inputs import Skipped, batches
from imgcls.inference.predictor import resolve_source


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint or a run folder")
    parser.add_argument("--images", default=None, help="images to run (default: the run's test images)")
    parser.add_argument("--batch-sizes", default="1,64", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per runtime and batch size")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = resolve_source(args.ckpt)
    images = [args.images] if args.images else default_check_images(checkpoint, limit=64)
    predictors = {"eager": Predictor.load(checkpoint)}
    with tempfile.TemporaryDirectory() as folder:
        for name, fmt, suffix in (("torch.export", "torch", ".pt2"), ("onnxruntime", "onnx", ".onnx")):
            check = export_model(checkpoint, Path(folder) / f"model{suffix}", fmt, images)
            print(check.line())
            predictors[name] = Predictor.load(check.path)
        contract = predictors["eager"].contract
        pool = torch.cat([b for _, b in batches(images, contract, 64, list[Skipped]())])
        print(
            f"{checkpoint}: {len(contract.class_names)} classes, {contract.in_chans}x{contract.image_size}x"
            f"{contract.image_size} uint8 input; {cpu_name()}, {os.cpu_count()} cores, torch threads "
            f"{torch.get_num_threads()}, torch {torch.__version__}"
        )
        print(f"{'batch':>5}  {'runtime':<13} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for size in [int(s) for s in args.batch_sizes.split(",")]:
            batch = pool[torch.arange(size) % len(pool)]
            times: dict[str, list[float]] = {name: [] for name in predictors}
            for call in range(args.warmup + args.repeats):
                for name, predictor in predictors.items():
                    started = time.perf_counter()
                    predictor.runtime(batch)
                    if call >= args.warmup:
                        times[name].append(time.perf_counter() - started)
            for name, seconds in times.items():
                values = np.asarray(seconds)
                print(
                    f"{size:>5}  {name:<13} {size / values.mean():>9.1f} {np.percentile(values, 50) * 1e3:>8.2f} "
                    f"{np.percentile(values, 99) * 1e3:>8.2f}"
                )


if __name__ == "__main__":
    main()
