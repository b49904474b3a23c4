"""Benchmark 2: time per training step, imgcls ``fit`` against a plain PyTorch loop.

Same model (``ImageClassifier``'s backbone and head, same memory format), same batches (the imgcls
EuroSAT loader and ``transform_batch``), same optimizer and batch size; the difference is Lightning,
the metrics, logging and the callbacks imgcls adds. Both run in one child process, alternating
rounds (imgcls, plain, plain, imgcls, ...) so that a busy shared CPU hits both alike; the figure per
side is the median step time over all its timed steps.

    python -m benchmarks.bench_overhead --root ../shared/data/eurosat_rgb --steps 8 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from typing import Any

from benchmarks.common import benchmark_parser, report, run_variant


def build(args: argparse.Namespace, cache_dir: str) -> tuple[Any, Any]:
    from imgcls import EuroSATDataModule, ImageClassifier

    datamodule = EuroSATDataModule(
        root=args.root,
        image_size=64,
        batch_size=args.batch_size,
        num_workers=args.workers,
        augment="flip",
        cache_dir=cache_dir,
    )
    datamodule.setup()
    model = ImageClassifier(backbone=args.backbone, num_classes=10, channels_last=args.channels_last)
    return datamodule, model


def imgcls_steps(args: argparse.Namespace, cache_dir: str) -> list[float]:
    """Seconds of each step of ``Trainer.fit``, measured between consecutive batch starts."""
    import torch
    from lightning.pytorch import Callback, Trainer

    from imgcls.callbacks import ImagesPerSecond

    datamodule, model = build(args, cache_dir)
    model.optimizer_factory = lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9)
    starts: list[float] = []

    class StepClock(Callback):
        def on_train_batch_start(self, *unused: Any) -> None:
            starts.append(time.perf_counter())

        def on_train_end(self, *unused: Any) -> None:
            starts.append(time.perf_counter())

    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=args.steps + args.warmup,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        callbacks=[StepClock(), ImagesPerSecond()],
    )
    trainer.fit(model, datamodule=datamodule)
    times = [b - a for a, b in itertools.pairwise(starts)]
    return times[args.warmup :]


def plain_steps(args: argparse.Namespace, cache_dir: str) -> list[float]:
    """Seconds of each step of a hand-written loop over the same model and batches."""
    import torch
    import torch.nn.functional as F

    datamodule, model = build(args, cache_dir)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = iter(datamodule.train_dataloader())
    times = []
    for _ in range(args.steps + args.warmup):
        start = time.perf_counter()
        batch = datamodule.transform_batch(next(loader), train=True)
        logits = model(batch["image"])
        loss = F.cross_entropy(logits, batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[args.warmup :]


def run_both(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    steps: dict[str, list[float]] = {"imgcls": [], "plain": []}
    with tempfile.TemporaryDirectory() as cache_dir:
        sides = {"imgcls": imgcls_steps, "plain": plain_steps}
        for round_ in range(args.rounds):
            # ABBA order, so that neither side always runs first (after the other's workers)
            for name in sorted(sides, reverse=round_ % 2 == 1):
                torch.manual_seed(0)
                steps[name] += sides[name](args, cache_dir)
    return {name: {"median": statistics.median(t), "min": min(t), "n": len(t)} for name, t in steps.items()}


def main() -> None:
    parser = benchmark_parser(__doc__, ["both"], threads=2, cache_dir=False)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per round and side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first in each round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the two sides")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.variant:
        report(run_both(args))
        return
    result = run_variant("benchmarks.bench_overhead", "both")
    print(f"\nOverhead: {args.backbone} at 64 px, batch {args.batch_size}, {args.rounds} alternating rounds")
    print("  (one process runs both sides, so the peak RSS below is shared by them)")
    for name, label in (("plain", "plain PyTorch loop"), ("imgcls", "imgcls Trainer.fit")):
        figures = result[name]
        print(
            f"  {label:<20} median {figures['median'] * 1000:,.1f} ms/step, min {figures['min'] * 1000:,.1f} ms/step, "
            f"{args.batch_size / figures['median']:,.1f} images/s, {figures['n']} steps"
        )
    print(
        f"  peak RSS tree {result['peak_rss_tree_mb']:,.1f} MB, peak RSS main {result['peak_rss_main_mb']:,.1f} MB"
    )
    ratio = result["imgcls"]["median"] / result["plain"]["median"]
    best = result["imgcls"]["min"] / result["plain"]["min"]
    print(f"ratio imgcls / plain time per step: {ratio:.3f}x median, {best:.3f}x best (goal: at most 1.05x)")


if __name__ == "__main__":
    main()
