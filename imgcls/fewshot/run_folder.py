"""A few-shot study's run folder: ``config.yaml``, ``fewshot.json``, ``episodes.csv``, TensorBoard scalars."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from imgcls import runs
from imgcls.fewshot.study import FewShotResult


def write_run_folder(run_dir: Path, result: FewShotResult, config_text: str) -> list[str]:
    """Write a study's result into ``run_dir``; return the names written."""
    (run_dir / runs.CONFIG).write_text(config_text)
    (run_dir / runs.FEWSHOT_RESULTS).write_text(json.dumps(result.summary, indent=2, default=str) + "\n")
    with (run_dir / runs.FEWSHOT_EPISODES).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["method", "episode", "classes", "accuracy"])
        writer.writeheader()
        writer.writerows(result.episode_rows())
    with SummaryWriter(log_dir=str(run_dir)) as events:
        for method, values in result.accuracies.items():
            summary = result.summary["methods"][method]
            events.add_scalar(f"fewshot/{method}_acc", summary["mean"], 0)
            if summary["ci95"] is not None:
                events.add_scalar(f"fewshot/{method}_acc_ci95", summary["ci95"], 0)
            for number, accuracy in zip(result.episodes.indices, values, strict=False):
                events.add_scalar(f"fewshot/{method}_episode_acc", float(accuracy), int(number))
            events.add_histogram(f"fewshot/{method}_episode_accuracies", values, 0)
    return [runs.CONFIG, runs.FEWSHOT_RESULTS, runs.FEWSHOT_EPISODES, "TensorBoard events"]
