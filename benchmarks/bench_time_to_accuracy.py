"""Benchmark 8: time to 90, 92 and 93% CIFAR-10 test accuracy, the CPU recipe against the one before it.

Recipes one after the other on this machine, each ``imgcls fit`` in a fresh process:

- ``airbench``: ``configs/cifar10_airbench.yaml`` (imgcls/airbench, whitening init, Muon, 10 epochs);
- ``airbench_b2000``: the same with each step's 2,000 images in one batch instead of four of 500 (the
  config before; on a 2-core Xeon the four batches trained 1.35x the images per second);
- ``airbench_wide``: the same with blocks twice and one and a half times as wide, 12 epochs (run it
  alone with ``--variants airbench_wide``; at 10 epochs, ``-- --trainer.max_epochs=10``, its fit took
  2,446 s on a 2-core AMD EPYC in bf16 for 90.63% test, against 1,409 s and 90.01% for ``airbench`` at
  12 epochs; at 15, airbench95's network and length, 3,929 s for 90.92%, 90% first at 3,380 s);
- ``recipe``: the CIFAR-10 recipe before it, ``configs/base/recipe.yaml`` on CIFAR-10 at 32 px
  (ResNet-18, AdamW one-cycle, label smoothing, weight average) for 8 epochs.

After every epoch the model as validation sees it (the weight average, where there is one) is scored on
the official 10,000 test images, without test-time augmentation; that scoring is kept off the clock.
A goal's time is the fit time up to the end of the first epoch that reaches it (DAWNBench's rule).
``--budget SECONDS`` stops each fit after that much time (``trainer.max_time``), for a short run; a
schedule cut short scores lower than it would at its planned length.

Beside the times it prints what the fit computed: GFLOPs per training image (three times the forward
pass's count by ``FlopCounterMode`` in ``run_info.json``: its count of a forward and backward pass of
imgcls/airbench is 3.0x the forward's), the rate over the whole fit, and that rate as a share of the
matrix-multiply ceiling of the fit's precision. A recipe near the ceiling can only buy accuracy with
compute, so the ceiling times 45 minutes is what goal 2's budget holds, against the published totals of
airbench94 (0.36 PFLOPs for 94% on the original images), airbench95 (1.39) and airbench96 (7.5).

    python -m benchmarks.bench_time_to_accuracy --root ../shared/data/cifar10
    python -m benchmarks.bench_time_to_accuracy --root ../shared/data/cifar10 --budget 120 --variants airbench
    python -m benchmarks.bench_time_to_accuracy --root ../shared/data/cifar10 \
        --variants airbench,airbench_b2000 -- --trainer.max_epochs=1 --trainer.limit_train_batches=0.4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from benchmarks.common import benchmark_parser, report, run_variant
from imgcls.precision import matmul_rate

REPO = Path(__file__).resolve().parent.parent
GOALS = (0.90, 0.92, 0.93)
VARIANTS = {
    "airbench": ["--config", str(REPO / "configs" / "cifar10_airbench.yaml")],
    "airbench_b2000": [
        "--config",
        str(REPO / "configs" / "cifar10_airbench.yaml"),
        "--data.init_args.batch_size=2000",
        "--trainer.accumulate_grad_batches=1",
    ],
    # the same recipe with blocks of 128/384/384 channels (2.5x the compute per image) for 12 epochs
    "airbench_wide": [
        "--config",
        str(REPO / "configs" / "cifar10_airbench.yaml"),
        "--model.backbone_kwargs={widths: [128, 384, 384]}",
        "--trainer.max_epochs=12",
    ],
    "recipe": [
        "--config",
        str(REPO / "configs" / "base" / "recipe.yaml"),
        "--data",
        str(REPO / "configs" / "base" / "data" / "cifar10_64.yaml"),
        "--data.init_args.image_size=32",
        "--trainer.max_epochs=8",
    ],
}
SCORES = "test_each_epoch.json"
TRAINING_FLOPS_PER_FORWARD = 3  # a forward and a backward pass, as FlopCounterMode counts them


class TestEachEpoch(Callback):
    """Score the test split at each epoch's validation, off the fit clock; write ``test_each_epoch.json``.

    It runs at the first validation batch, when every callback's ``on_validation_epoch_start`` (the weight
    average's swap included) has run, so it scores the model that validation scores.
    """

    def __init__(self) -> None:
        self.start = 0.0
        self.off_clock = 0.0
        self.train_images = 0
        self.epochs: list[dict[str, Any]] = []

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.train_images += len(batch["image"])

    def on_validation_batch_start(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or batch_idx != 0:
            return
        began = time.perf_counter()
        fit_seconds = began - self.start - self.off_clock
        datamodule = trainer.datamodule
        datamodule.setup("test")
        correct = total = 0
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for test_batch in datamodule.test_dataloader():
                test_batch = datamodule.evaluation_batch(test_batch, pl_module.device)
                predicted = pl_module(test_batch["image"]).argmax(dim=1)
                correct += int((predicted == test_batch["label"]).sum())
                total += len(predicted)
        self.off_clock += time.perf_counter() - began
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "test_acc": correct / total,
                "fit_s": fit_seconds,
                "train_images": self.train_images,
            }
        )
        scores = {"epochs": self.epochs, "scoring_s": self.off_clock, "precision": str(trainer.precision)}
        Path(trainer.log_dir, SCORES).write_text(json.dumps(scores, indent=1))


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    from imgcls.commands import main as imgcls_main

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(args.runs_dir or tmp)
        experiment = f"time_to_accuracy_{args.variant}"
        command = [
            "fit",
            *VARIANTS[args.variant],
            f"--data.init_args.root={args.root}",
            f"--data.init_args.cache_dir={args.cache_dir or Path(tmp) / 'cache'}",
            f"--runs_dir={runs_dir}",
            f"--experiment={experiment}",
            f"--trainer.callbacks+={__name__}.TestEachEpoch",
            *(["--trainer.max_time", f"00:00:00:{args.budget}"] if args.budget else []),
            *args.extra,
        ]
        start = time.perf_counter()
        imgcls_main(command)
        wall = time.perf_counter() - start
        run = sorted((runs_dir / experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))[-1]
        scores = json.loads((run / SCORES).read_text())
        info = json.loads((run / "run_info.json").read_text())
    epochs = scores["epochs"]
    reached = {f"{goal:.2f}": next((e for e in epochs if e["test_acc"] >= goal), None) for goal in GOALS}
    return {
        "epochs": epochs,
        "reached": reached,
        "fit_s": wall - scores["scoring_s"],  # the whole command, cache and set-up included
        "scoring_s": scores["scoring_s"],
        "device": info.get("device"),
        "precision": scores["precision"],
        "train_gflops_per_image": TRAINING_FLOPS_PER_FORWARD * info["gflops"] if "gflops" in info else None,
    }


def compute_line(result: dict[str, Any], ceiling: dict[str, float]) -> str:
    """What a fit computed: GFLOPs per training image, GFLOP/s over the fit, share of the ceiling."""
    per_image = result["train_gflops_per_image"]
    if not per_image or not result["epochs"] or not result["epochs"][-1]["train_images"]:
        return "compute: not counted (no GFLOPs in run_info.json or no epoch scored)"
    last = result["epochs"][-1]
    gflop = per_image * last["train_images"]
    dtype, name = ("bfloat16", "bf16") if "bf16" in result["precision"] else ("float32", "fp32")
    rate = gflop / last["fit_s"]
    return (
        f"compute: {per_image:.3f} GFLOP per training image, {gflop / 1e6:.3f} PFLOP in {last['fit_s']:.0f} s "
        f"of fit: {rate:.0f} GFLOP/s, {rate / ceiling[dtype]:.0%} of the {name} ceiling ({result['precision']})"
    )


def main() -> None:
    parser = benchmark_parser(
        __doc__, VARIANTS, root=None, root_help="CIFAR-10 folder", batch_size=None, runs_dir=True
    )
    parser.add_argument(
        "--variants", default="airbench,recipe", help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--budget", type=int, default=None, help="stop each fit after this many seconds")
    parser.add_argument("extra", nargs="*", help="more imgcls options after --, for every variant")
    args = parser.parse_args()
    if args.variant:
        report(run_one(args))
        return
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    ceiling = {dtype: matmul_rate(dtype) for dtype in ("bfloat16", "float32")}  # before the fits, alone
    results = {}
    for name in names:
        results[name] = run_variant("benchmarks.bench_time_to_accuracy", name)
        print(f"BENCH {name}: {json.dumps(results[name])}", flush=True)
    print(
        f"\nCIFAR-10 time to test accuracy, one fit after the other ({platform.processor() or platform.machine()})"
    )
    print(f"  cpu cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.2f}")
    print(
        f"  matrix-multiply ceiling (2048x2048, all threads): {ceiling['bfloat16']:.0f} GFLOP/s bf16, "
        f"{ceiling['float32']:.0f} GFLOP/s fp32; read another CPU's times as a ratio of these"
    )
    print(
        f"  45 minutes at the bf16 ceiling: {ceiling['bfloat16'] * 2700 / 1e6:.2f} PFLOP (published totals: "
        "airbench94 0.36 PFLOPs, airbench95 1.39, airbench96 7.5)"
    )
    for name, r in results.items():
        best = max(r["epochs"], key=lambda e: e["test_acc"])
        goals = ", ".join(
            f"{goal}: epoch {hit['epoch'] + 1} at {hit['fit_s']:.0f} s" if hit else f"{goal}: not reached"
            for goal, hit in r["reached"].items()
        )
        print(
            f"  {name:<10} best {best['test_acc']:.4f} (epoch {best['epoch'] + 1}); {goals}; fit {r['fit_s']:.0f} s"
        )
        print(f"  {'':<10} {compute_line(r, ceiling)}")
    if len(results) == 2:
        first, second = results.values()
        for goal in first["reached"]:
            a, b = first["reached"][goal], second["reached"][goal]
            if a and b:
                print(f"  time to {goal}: {names[0]} / {names[1]} = {a['fit_s'] / b['fit_s']:.2f}")


if __name__ == "__main__":
    main()
