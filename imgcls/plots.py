"""Figures of runs: confusion matrices, image grids, class distributions, run comparisons.

Every function returns a ``matplotlib.figure.Figure`` drawn on the Agg canvas, never through pyplot's
global state, so it works headless, in DataLoader-free callbacks and in notebooks alike.
``save_figure`` writes one to a file.

matplotlib and pandas are imported by the functions that draw: every command imports this module through
its callbacks, most never draw, and pandas alone took 0.4-0.5 s to import (2-core CPU).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot window manager involved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` (format from the suffix) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def plot_confusion_matrix(
    confusion: np.ndarray | torch.Tensor | pd.DataFrame,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> Figure:
    """Counts and row-normalized percentages (recall per true class), class names on both axes.

    Args:
        confusion: (C, C) counts, rows true classes, columns predicted classes; a DataFrame brings its
            own class names (as read from ``confusion_matrix.csv``).
        class_names: names in label order; defaults to the DataFrame's index or to 0..C-1.
        title: figure title.
    """
    # a DataFrame can only exist once pandas is imported: no need to import it for tensors
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(confusion, pandas.DataFrame):
        class_names = class_names or [str(c) for c in confusion.index]
        confusion = confusion.to_numpy()
    counts = np.asarray(torch.as_tensor(confusion).cpu(), dtype=np.int64)
    n = counts.shape[0]
    names = [str(c) for c in (class_names or range(n))]
    totals = counts.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    side = max(4.0, 0.75 * n + 2.5)
    figure = new_figure(side + 1.0, side)
    ax = figure.add_subplot()
    image = ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of true class")
    small = n > 12
    for i in range(n):
        for j in range(n):
            color = "white" if percent[i, j] > 55 else "black"
            # zero cells stay quiet so that the confusions stand out
            text = (
                f"{counts[i, j]}" if small or counts[i, j] == 0 else f"{counts[i, j]}\n{percent[i, j]:.0f}%"
            )
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7 if small else 8)
    ax.set_xticks(range(n), names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title} (accuracy {accuracy:.1%}, n={counts.sum()})")
    return figure


def to_display_images(
    images: torch.Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> np.ndarray:
    """(B, C, H, W) images -> (B, H, W, 3 or 1) floats in [0, 1] for ``imshow``.

    uint8 images are scaled by 1/255, other integer images by their maximum; float images are
    un-normalized with ``mean``/``std`` when given. More than three channels (multispectral) show the
    first three.
    """
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        images = images.float() / 255
    elif not images.is_floating_point():
        # 16-bit multispectral bands: stretch each image to its own maximum
        images = images.float()
        images = images / images.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1)
    else:
        images = images.float()
        if mean is not None and std is not None:
            channels = images.shape[1]
            mean_t = torch.as_tensor(list(mean), dtype=torch.float32)[:channels].view(1, -1, 1, 1)
            std_t = torch.as_tensor(list(std), dtype=torch.float32)[:channels].view(1, -1, 1, 1)
            images = images * std_t + mean_t
    if images.shape[1] > 3:
        images = images[:, :3]
    return images.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def plot_image_grid(
    images: np.ndarray | torch.Tensor,
    titles: Sequence[str],
    columns: int = 8,
    title: str | None = None,
    title_colors: Sequence[str] | None = None,
) -> Figure:
    """Images in a grid, each with its own title.

    Args:
        images: (B, H, W, C) floats in [0, 1] (see ``to_display_images``) or (B, C, H, W) uint8.
        titles: one title per image.
        columns: images per row.
        title: figure title.
        title_colors: optional colour per image title (green/red for right/wrong predictions).
    """
    if isinstance(images, torch.Tensor):
        images = to_display_images(images)
    count = len(images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    figure = new_figure(1.9 * columns, 2.1 * rows + (0.4 if title else 0))
    axes = figure.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= count:
            continue
        image = images[k]
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image)
        color = title_colors[k] if title_colors else "black"
        ax.set_title(titles[k], fontsize=7, color=color)
    if title:
        figure.suptitle(title)
    return figure


def plot_class_distribution(counts: pd.DataFrame, title: str = "Images per class") -> Figure:
    """One bar chart per split of images per class.

    Args:
        counts: rows are classes, columns splits (as in ``class_distribution.csv``).
        title: figure title.
    """
    splits = list(counts.columns)
    figure = new_figure(max(6.0, 0.5 * len(counts) + 3), 2.6 * len(splits) + 0.5)
    axes = figure.subplots(len(splits), 1, squeeze=False, sharex=True)[:, 0]
    positions = np.arange(len(counts))
    for ax, split in zip(axes, splits, strict=True):
        values = counts[split].to_numpy()
        bars = ax.bar(positions, values, color="tab:blue")
        ax.bar_label(bars, fontsize=7)
        ax.set_ylabel("images")
        ax.set_title(f"{split} ({int(values.sum())} images)")
    axes[-1].set_xticks(positions, [str(c) for c in counts.index], rotation=45, ha="right")
    figure.suptitle(title)
    return figure


def plot_test_accuracy(
    table: pd.DataFrame,
    goal: float | None = None,
    column: str = "test_acc",
    label: str = "run",
) -> Figure:
    """Bar chart of test accuracy per run or group, with 95% intervals when the table has them.

    Args:
        table: ``compare_runs`` or ``group_runs`` output.
        goal: draw a horizontal goal line at this accuracy (0.85 for the EuroSAT study).
        column: the accuracy column; grouped tables use ``<column>_mean`` and ``<column>_ci95``.
        label: column that names the bars.
    """
    mean_column = f"{column}_mean" if f"{column}_mean" in table else column
    values = table[mean_column].astype(float).to_numpy()
    errors = table[f"{column}_ci95"].astype(float).fillna(0).to_numpy() if f"{column}_ci95" in table else None
    names = [str(n) for n in table[label]]
    figure = new_figure(max(5.0, 0.8 * len(names) + 2), 4.2)
    ax = figure.add_subplot()
    bars = ax.bar(range(len(values)), values, yerr=errors, capsize=4, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.1%}" for v in values], fontsize=8, label_type="center", color="white")
    if goal is not None:
        ax.axhline(goal, color="tab:red", linestyle="--", label=f"goal {goal:.0%}")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy" + (" (mean, 95% CI)" if errors is not None else ""))
    return figure


def plot_accuracy_vs_gflops(table: pd.DataFrame, column: str = "test_acc", label: str = "run") -> Figure:
    """Accuracy against GFLOPs per image, and accuracy per GFLOP (the CIFAR-10 study's selection metric)."""
    accuracy_column = f"{column}_mean" if f"{column}_mean" in table else column
    data = table.dropna(subset=[accuracy_column, "gflops"])
    accuracy = data[accuracy_column].astype(float).to_numpy()
    gflops = data["gflops"].astype(float).to_numpy()
    names = [str(n) for n in data[label]]
    figure = new_figure(11, 4.2)
    left, right = figure.subplots(1, 2)
    left.scatter(gflops, accuracy, color="tab:blue")
    for x, y, name in zip(gflops, accuracy, names, strict=True):
        left.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set_xscale("log")
    left.set_xlabel("GFLOPs per image (log scale)")
    left.set_ylabel("test accuracy")
    left.set_title("Accuracy against compute")
    per_gflop = np.divide(accuracy, gflops, out=np.full(accuracy.shape, np.nan), where=gflops > 0)
    order = np.argsort(-np.nan_to_num(per_gflop, nan=-1))
    bars = right.bar(range(len(order)), per_gflop[order], color="tab:green")
    right.bar_label(bars, fmt="%.3g", fontsize=8)
    right.set_xticks(range(len(order)), [names[i] for i in order], rotation=30, ha="right")
    right.set_ylabel("accuracy per GFLOP")
    right.set_title("Accuracy per GFLOP (higher is better)")
    return figure


def plot_curves(
    curves: Mapping[str, pd.DataFrame],
    metrics: Sequence[str] = ("val_acc", "val_loss"),
    x: str = "epoch",
) -> Figure:
    """Overlay one curve per run for each metric.

    Args:
        curves: run name -> DataFrame with an ``x`` column and one column per metric (``read_curves``).
        metrics: the metrics to draw, one panel each.
        x: the x-axis column.
    """
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(5.5 * len(metrics), 4.0)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for name, frame in curves.items():
            if metric in frame and frame[metric].notna().any():
                points = frame.dropna(subset=[metric])
                ax.plot(points[x], points[metric], marker="o", markersize=3, label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    if curves:
        axes[0].legend(fontsize=7)
    return figure


def describe_prediction(true: str | None, predicted: str, probability: float) -> str:
    """A short image title: true class, predicted class and its probability."""
    head = f"true: {true}\n" if true is not None else ""
    return f"{head}pred: {predicted} ({probability:.0%})"


def plot_examples(
    groups: Mapping[str, tuple[np.ndarray | torch.Tensor, pd.DataFrame]], columns: int = 8
) -> Figure:
    """One row of predictions per group, titled with true class, predicted class and probability.

    Args:
        groups: row title -> (images, predictions with ``true``, ``predicted`` and ``probability``
            columns); images as for ``plot_image_grid``. Titles are green when right, red when wrong.
        columns: images per row; longer groups are cut.
    """
    columns = max(1, columns)
    figure = new_figure(1.9 * columns, 2.3 * max(1, len(groups)))
    subfigures = figure.subfigures(max(1, len(groups)), 1, squeeze=False)[:, 0]
    for subfigure, (name, (images, rows)) in zip(subfigures, groups.items(), strict=False):
        if isinstance(images, torch.Tensor):
            images = to_display_images(images)
        records = rows.to_dict("records")[:columns]
        subfigure.suptitle(f"{name} ({len(records)})" if records else f"{name}: none", fontsize=10)
        axes = subfigure.subplots(1, columns, squeeze=False)[0]
        for ax in axes:
            ax.axis("off")
        for ax, image, record in zip(axes, images, records, strict=False):
            if image.shape[-1] == 1:
                ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(image)
            true = record.get("true")
            right = true == record["predicted"]
            ax.set_title(
                describe_prediction(true, str(record["predicted"]), float(record["probability"])),
                fontsize=7,
                color="tab:green" if right else "tab:red",
            )
    return figure
