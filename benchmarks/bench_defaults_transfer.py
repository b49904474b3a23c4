"""Benchmark 4: do imgcls's defaults transfer? ResNet-18 from scratch at 64 px on an untuned dataset.

Two sides, same budget (the same training and test images, epochs, batch size, image size, seed),
one after the other on this machine:

- plain: the loop a competent user writes for the check, and nothing of imgcls's training code: the
  training images as one uint8 tensor on the device, random shifts of up to 1/8 of the side (padding)
  and horizontal flips, torchvision ``resnet18`` with a stem for the data's channels, AdamW with
  one-cycle stepped per batch, label smoothing 0.1, channels_last and bf16 autocast on a GPU; scores
  the final weights on the test set. It picks its images with imgcls's pure index functions
  (``imgcls.data.splits``), so it trains on exactly the images imgcls trains on: the training pool less
  the 10% of each class imgcls holds out for validation.
- imgcls: ``imgcls fit --config configs/base/recipe.yaml --data configs/base/data/<dataset>_64.yaml``
  with only the run length set (and loader workers), then ``imgcls test --ckpt_path best``.
  ``--config`` checks another config the same way (the main one: ``--config configs/eurosat_resnet50.yaml
  --backbone torchvision/resnet18``, its data swapped for the dataset's).

``--max-per-class N`` caps the training pool and the test set at N images per class on both sides, for
a check that fits a CPU's time.

    python -m benchmarks.bench_defaults_transfer --dataset fashion_mnist --root ../shared/data/fashion_mnist/raw
    python -m benchmarks.bench_defaults_transfer --dataset cifar10 --root ../shared/data/cifar10
    python -m benchmarks.bench_defaults_transfer --dataset mnist --root ../shared/data/mnist/raw \
        --config configs/eurosat_resnet50.yaml --backbone torchvision/resnet18

Wall time covers reading the data, training and testing (the imgcls side's one-off cache build too).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import benchmark_parser, print_table, report, run_variant

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "configs" / "base" / "recipe.yaml"
DATA_PIECES = {
    "fashion_mnist": REPO / "configs" / "base" / "data" / "fashion_mnist_64.yaml",
    "cifar10": REPO / "configs" / "base" / "data" / "cifar10_64.yaml",
    "mnist": REPO / "configs" / "base" / "data" / "mnist_64.yaml",
}


def load_split(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """(train images NCHW uint8, train labels, test images, test labels) at their native size.

    The images imgcls trains and tests on, chosen by imgcls's own pure index functions with the same
    seed: the training pool capped at ``--max-per-class`` per class, less the ``--val-fraction`` of
    each class imgcls holds out for validation, and the official test set under the same cap.
    """
    from imgcls.data.splits import cap_per_class, stratified_split

    root = Path(args.root)
    if args.dataset in ("fashion_mnist", "mnist"):
        from imgcls.data.mnist import read_idx

        def idx(name: str) -> np.ndarray:
            plain = root / name
            return read_idx(plain if plain.exists() else plain.with_name(name + ".gz"))

        pools = {
            "train": (idx("train-images-idx3-ubyte")[:, None], idx("train-labels-idx1-ubyte")),
            "test": (idx("t10k-images-idx3-ubyte")[:, None], idx("t10k-labels-idx1-ubyte")),
        }

        def take(split: str, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            images, labels = pools[split]
            return images[chosen], labels[chosen]

        targets = {split: np.asarray(labels) for split, (_, labels) in pools.items()}
    else:
        from torchvision.datasets import ImageFolder

        folders = {split: ImageFolder(str(root / split)) for split in ("train", "test")}
        targets = {split: np.asarray(folder.targets) for split, folder in folders.items()}

        def take(split: str, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            folder = folders[split]
            pixels = np.stack(
                [np.asarray(folder.loader(folder.samples[i][0]).convert("RGB")) for i in chosen]
            )
            return pixels.transpose(0, 3, 1, 2).copy(), targets[split][chosen]

    everything = np.arange(len(targets["train"]))
    trainval = cap_per_class(everything, targets["train"], args.max_per_class, args.split_seed)
    train, _ = stratified_split(trainval, targets["train"], args.val_fraction, args.split_seed, purpose=2)
    test = cap_per_class(
        np.arange(len(targets["test"])), targets["test"], args.max_per_class, args.split_seed
    )
    return (*take("train", train), *take("test", test))


def run_plain(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torchvision.models import resnet18

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in load_split(args))
    train_x, train_y = train_x.to(device), train_y.long().to(device)
    channels = train_x.shape[1]
    mean = train_x[:5000].float().mean(dim=(0, 2, 3), keepdim=True) / 255
    std = train_x[:5000].float().std(dim=(0, 2, 3), keepdim=True) / 255

    def prepare(x: torch.Tensor, train: bool) -> torch.Tensor:
        x = F.interpolate(x.float() / 255, size=args.image_size, mode="bilinear", antialias=True)
        if train:
            pad = args.image_size // 8
            x = F.pad(x, [pad] * 4, mode="replicate")
            i, j = np.random.randint(0, 2 * pad + 1, size=2)
            x = x[..., i : i + args.image_size, j : j + args.image_size]
            flip = torch.rand(len(x), device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    model = resnet18(num_classes=int(train_y.max()) + 1)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model = model.to(device, memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    np.random.seed(args.seed)
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), device=device)
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            with autocast:
                loss = F.cross_entropy(
                    model(prepare(train_x[batch], True)), train_y[batch], label_smoothing=0.1
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    correct = 0
    with torch.no_grad(), autocast:
        for first in range(0, len(test_x), 512):
            x = test_x[first : first + 512].to(device)
            correct += (model(prepare(x, False)).argmax(1).cpu() == test_y[first : first + 512]).sum().item()
    return {
        "test_acc": correct / len(test_x),
        "wall_s": time.perf_counter() - start,
        "device": str(device),
        "train_images": len(train_x),
        "test_images": len(test_x),
    }


def run_imgcls(args: argparse.Namespace) -> dict:
    from imgcls.commands import main as imgcls_main

    start = time.perf_counter()
    # a capped check is not the whole dataset's: its run folder says so
    config = Path(args.config)
    name = "defaults" if config.resolve() == RECIPE else config.stem
    experiment = f"{name}_{args.dataset}" + (f"_max{args.max_per_class}" if args.max_per_class else "")
    with tempfile.TemporaryDirectory() as tmp:
        common = [
            "--config",
            str(config),
            "--data",
            str(DATA_PIECES[args.dataset]),
            f"--data.init_args.root={args.root}",
            f"--data.init_args.num_workers={args.workers}",
            f"--data.init_args.cache_dir={args.cache_dir or Path(tmp) / 'cache'}",
            f"--runs_dir={args.runs_dir or tmp}",
            f"--experiment={experiment}",
            f"--seed_everything={args.seed}",
            f"--trainer.max_epochs={args.epochs}",
            f"--data.init_args.val_fraction={args.val_fraction}",
            f"--data.init_args.seed={args.split_seed}",
        ]
        if args.max_per_class is not None:
            common.append(f"--data.init_args.max_per_class={args.max_per_class}")
        if args.backbone is not None:
            common.append(f"--model.backbone={args.backbone}")
        imgcls_main(["fit", *common])
        imgcls_main(["test", *common, "--ckpt_path=best"])
        runs = sorted(Path(args.runs_dir or tmp).glob(f"{experiment}/version_*/metrics.json"))
        metrics = json.loads(runs[-1].read_text())
        sizes = json.loads((runs[-1].parent / "run_info.json").read_text())["split_sizes"]
    return {
        "test_acc": metrics["test_acc"],
        "wall_s": time.perf_counter() - start,
        "run": str(runs[-1].parent),
        "train_images": sizes["train"],
        "test_images": sizes["test"],
    }


def main() -> None:
    parser = benchmark_parser(
        __doc__,
        ["plain", "imgcls"],
        root=None,
        root_help="the dataset's folder (idx files, or train/ and test/)",
        runs_dir=True,
    )
    parser.add_argument("--dataset", choices=sorted(DATA_PIECES), default="fashion_mnist")
    parser.add_argument(
        "--config", default=str(RECIPE), help="the imgcls side's config (its data is swapped)"
    )
    parser.add_argument(
        "--backbone", default=None, help="the imgcls side's model.backbone (default: the config's)"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the plain loop")
    parser.add_argument("--seed", type=int, default=0, help="training seed of both sides")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split both sides train on")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of each class imgcls holds out (neither side trains on it)",
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=None,
        help="cap the training pool and the test set per class (CPU budgets)",
    )
    args = parser.parse_args()
    if args.variant:
        report((run_plain if args.variant == "plain" else run_imgcls)(args))
        return
    rows = [(name, run_variant("benchmarks.bench_defaults_transfer", name)) for name in ("plain", "imgcls")]
    print_table(
        f"ResNet-18 from scratch, {args.dataset} at {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}",
        rows,
        [("wall_s", "wall s"), ("peak_rss_tree_mb", "peak RSS tree MB")],
    )
    plain, ours = rows[0][1], rows[1][1]
    print(
        f"  test accuracy: plain {plain['test_acc']:.4f}, imgcls {ours['test_acc']:.4f} "
        f"({100 * (ours['test_acc'] - plain['test_acc']):+.2f} points); "
        f"wall time ratio imgcls/plain {ours['wall_s'] / plain['wall_s']:.2f}x"
    )
    print(
        f"  images: plain trained on {plain['train_images']:,} and tested on {plain['test_images']:,}, "
        f"imgcls {ours['train_images']:,} and {ours['test_images']:,}"
    )


if __name__ == "__main__":
    main()
