"""Benchmark 5: what each recipe switch buys on EuroSAT RGB, ResNet-18 from scratch at 64 px.

Variants of ``configs/eurosat_resnet18_fast.yaml``, same seed and split, one after another on this
machine, each ``imgcls fit`` then ``imgcls test --ckpt_path best`` (no test-time augmentation):

- ``previous``: the recipe before the switches: 25 epochs, batch 128, shifts of up to 6 px besides the
  flips and quarter turns, no weight average, full size throughout;
- ``plain``: the recipe's length (15 epochs) with both switches off;
- ``ema``: + the exponential moving average of the weights (``ema.decay``), batch norm recomputed;
- ``resize``: + progressive resizing (``progressive_resizing.start_scale``) alone;
- ``ema+resize``: both, which is the config as it stands.
- ``stem``, ``stem+b128``, ``stem+plain``, ``stem+flip``, ``128px``, ``stem+128px``: candidates with more
  resolution inside the network (no max-pool after the first convolution, or inputs upsampled to
  128 px), for a machine where the extra compute is cheap.
- ``gpu``: ``configs/eurosat_resnet18_gpu.yaml`` (``stem+128px`` at batch 256 and SGD 0.3).

For each: test accuracy, fit wall time, the first epoch whose validation accuracy reaches the goal
and the fit time up to the end of that epoch. The last lines give the time to the goal of each run
as a share of the previous recipe's.

    python -m benchmarks.bench_recipes --root ../shared/data/eurosat_rgb
    python -m benchmarks.bench_recipes --variants previous,ema+resize --workers 6
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import benchmark_parser, report, run_variant

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "eurosat_resnet18_fast.yaml"
OFF = ["--ema.decay=null", "--progressive_resizing.start_scale=null"]
NO_STEM_POOL = "--model.stem_pool=false"
VARIANTS = {
    "previous": [
        "--trainer.max_epochs=25",
        "--data.init_args.batch_size=128",
        "--data.init_args.max_translate_px=6",
        *OFF,
    ],
    "plain": OFF,
    "ema": ["--progressive_resizing.start_scale=null"],
    "resize": ["--ema.decay=null"],
    "ema+resize": [],
    # candidates that keep more resolution inside the network, about 4x (stem) and 15x (stem+128px)
    # the compute per image: cheap on a GPU, where a 64 px ResNet-18 step is bound by its overheads
    "stem": [NO_STEM_POOL],
    "stem+b128": [NO_STEM_POOL, "--data.init_args.batch_size=128"],
    "stem+plain": [NO_STEM_POOL, "--data.init_args.batch_size=128", *OFF],
    "stem+flip": [
        NO_STEM_POOL,
        "--data.init_args.batch_size=128",
        "--data.init_args.augment=flip",
        "--ema.decay=null",
    ],
    "128px": ["--data.init_args.image_size=128", "--data.init_args.batch_size=128"],
    "stem+128px": [NO_STEM_POOL, "--data.init_args.image_size=128", "--data.init_args.batch_size=128"],
    # configs/eurosat_resnet18_gpu.yaml: stem+128px at batch 256 and SGD 0.3
    "gpu": [
        NO_STEM_POOL,
        "--data.init_args.image_size=128",
        "--data.init_args.batch_size=256",
        "--model.optimizer.init_args.lr=0.3",
        "--model.lr_scheduler.init_args.max_lr=0.3",
    ],
}


def val_accuracies(run: Path) -> dict[int, float]:
    """Validation accuracy of each epoch, from the run's metrics.csv."""
    with (run / "metrics.csv").open() as f:
        return {int(r["epoch"]): float(r["val_acc"]) for r in csv.DictReader(f) if r.get("val_acc")}


def run_one(args: argparse.Namespace) -> dict:
    from imgcls.commands import main as imgcls_main

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(args.runs_dir or tmp)
        experiment = f"eurosat_recipe_{args.variant.replace('+', '_')}"
        common = [
            "--config",
            str(CONFIG),
            f"--data.init_args.root={args.root}",
            f"--data.init_args.num_workers={args.workers}",
            f"--data.init_args.cache_dir={args.cache_dir or Path(tmp) / 'cache'}",
            f"--runs_dir={runs_dir}",
            f"--experiment={experiment}",
            *VARIANTS[args.variant],
            *args.extra,
        ]
        start = time.perf_counter()
        imgcls_main(["fit", *common])
        fit_seconds = time.perf_counter() - start
        imgcls_main(["test", *common, "--ckpt_path=best"])
        run = sorted((runs_dir / experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))[-1]
        info = json.loads((run / "run_info.json").read_text())
        test = json.loads((run / "metrics.json").read_text())
        vals = val_accuracies(run)
    seconds = [info["epoch_seconds"][str(e)] for e in sorted(map(int, info["epoch_seconds"]))]
    goal_epoch = next((e for e in sorted(vals) if vals[e] >= args.goal), None)
    return {
        "test_acc": test["test_acc"],
        "tested_epoch": test.get("epoch"),
        "epochs": len(seconds),
        "fit_s": fit_seconds,
        "epoch_s": seconds,
        "val_acc": [vals[e] for e in sorted(vals)],
        "goal_epoch": goal_epoch,
        "to_goal_s": sum(seconds[: goal_epoch + 1]) if goal_epoch is not None else None,
        "run": str(run),
    }


def main() -> None:
    parser = benchmark_parser(__doc__, VARIANTS, batch_size=None, runs_dir=True)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--goal", type=float, default=0.97, help="validation accuracy that counts as reached")
    parser.add_argument("extra", nargs="*", help="more imgcls options after --, for every variant")
    args = parser.parse_args()
    if args.variant:
        report(run_one(args))
        return
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    results = {}
    for name in names:
        results[name] = run_variant("benchmarks.bench_recipes", name)
        r = results[name]
        print(f"BENCH {name}: {json.dumps(r)}", flush=True)
    print(f"\nEuroSAT RGB, ResNet-18 from scratch at 64 px (goal: val accuracy {args.goal:.2f})")
    print(f"  cpu cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.2f}")
    for name, r in results.items():
        goal = (
            f"epoch {r['goal_epoch'] + 1} after {r['to_goal_s']:.0f} s"
            if r["goal_epoch"] is not None
            else "not reached"
        )
        print(
            f"  {name:<11} test acc {r['test_acc']:.4f} (epoch {r['tested_epoch']}), {r['epochs']} epochs in "
            f"{r['fit_s']:.0f} s ({sum(r['epoch_s']) / r['epochs']:.1f} s/epoch), val goal: {goal}"
        )
    base = results.get("previous")
    if base:
        for name, r in results.items():
            if name != "previous":
                print(f"  {name:<11} fit time {r['fit_s'] / base['fit_s']:.2f}x the previous recipe's")


if __name__ == "__main__":
    main()
