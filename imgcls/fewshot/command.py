"""``imgcls fewshot``: a few-shot study from a YAML config into a run folder of its own.

imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --ckpt_path runs/x/version_0/checkpoints/best.ckpt
imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --backbone resnet18 --pretrained true --k_shot 1

The run folder ``<runs_dir>/<experiment>/version_N`` holds the resolved ``config.yaml``,
``fewshot.json`` (per method: mean accuracy, std, 95% CI, seconds), ``episodes.csv`` (every episode's
classes and accuracy) and TensorBoard scalars; ``imgcls compare`` reads it beside other runs.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import json
import logging
import re
from pathlib import Path
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser

from imgcls import runs
from imgcls.analysis.commands import _Parser
from imgcls.cli import add_run_folder_arguments
from imgcls.errors import ConfigError
from imgcls.fewshot.study import FewShotResult, FewShotStudy

log = logging.getLogger(__name__)
DESCRIPTION = (
    "N-way K-shot episodes from a datamodule's split, scored with a backbone's frozen features (prototypes, "
    "linear) or by fine-tuning it per episode; mean accuracy with 95% confidence intervals. The model is an "
    "imgcls checkpoint (--ckpt_path) or a backbone name with --pretrained. Results go to a new "
    "<runs_dir>/<experiment>/version_N: config.yaml, fewshot.json, episodes.csv, TensorBoard scalars."
)
EXAMPLE_CONFIG = "configs/fewshot/eurosat_5way5shot.yaml"


class FewShotParser(_Parser):
    """``_Parser`` (one-line errors with close matches) that also takes jsonargparse's own keyword
    arguments, which it passes when it builds parsers for a ``class_path`` option such as ``--data``."""

    def __init__(self, prog: str = "imgcls fewshot", description: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("exit_on_error", False)
        kwargs.setdefault("allow_abbrev", False)
        ArgumentParser.__init__(self, prog=prog, description=description, **kwargs)

    def explain(self, message: str) -> str:
        """One line out of jsonargparse's messages, with the datamodule's own arguments named in full."""
        text = message.strip()
        if text.startswith("the following arguments are required: data"):
            return (
                "imgcls fewshot needs a datamodule: --config FILE with a data: section (class_path, init_args), "
                f"e.g. {EXAMPLE_CONFIG}"
            )
        unknown = re.match(r"Option '([\w.]+)' is not accepted", text)
        if unknown:  # a key of a config file
            keys = [option.removeprefix("--") for option in self.options]
            close = difflib.get_close_matches(unknown.group(1), keys, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"unknown setting {unknown.group(1)!r}{hint}"
        head = re.match(r'Parser key "(\w+)":\s*(\S.*)', text)
        if head and head.group(1) == "config":
            return f"--config: {head.group(2)}; pass a few-shot config such as {EXAMPLE_CONFIG}"
        if not text.startswith('Parser key "data"'):
            return super().explain(message)
        unknown_class = re.search(r"class_path '([\w.]+)':\s*module '[\w.]+' has no attribute", text)
        if unknown_class:
            import imgcls

            given = unknown_class.group(1)
            names = [f"imgcls.{n}" for n in imgcls.__all__ if n.endswith("DataModule")]
            close = difflib.get_close_matches(given, names, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]}?" if close else f" imgcls has: {', '.join(names)}."
            return f"--data: unknown datamodule {given}.{hint}"
        if "is not accepted" in text:
            from imgcls.cli import _explain_class_option

            return _explain_class_option(text)
        inner = re.search(r"class_path '[\w.]+':\n(.*)\n\s*- Expected a <class 'NoneType'>", text, re.DOTALL)
        if inner:  # a value of one of the datamodule's arguments
            nested = re.sub(r'Parser key "(\w+)"', r'Parser key "data.init_args.\1"', inner.group(1))
            return super().explain(nested)
        return super().explain(message)


def fewshot_parser() -> FewShotParser:
    """The parser of ``imgcls fewshot``: --config, the study's arguments, the run folder's."""
    parser = FewShotParser("imgcls fewshot", DESCRIPTION)
    parser.add_argument(
        "--config", action=ActionConfigFile, help=f"A few-shot YAML config ({EXAMPLE_CONFIG})."
    )
    parser.add_class_arguments(FewShotStudy, None, help="The study (FewShotStudy's arguments)")
    add_run_folder_arguments(parser.add_argument_group("Output"))
    return parser


def write_run_folder(run_dir: Path, result: FewShotResult, config_text: str) -> list[str]:
    """``config.yaml``, ``fewshot.json``, ``episodes.csv`` and TensorBoard scalars; the names written."""
    from torch.utils.tensorboard import SummaryWriter

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


def fewshot_command(argv: list[str]) -> Path:
    """Run ``imgcls fewshot``; return the run folder it wrote."""
    import torch

    parser = fewshot_parser()
    config = parser.parse(argv)
    if config.threads is not None:
        if config.threads < 1:
            raise ConfigError(
                f"--threads must be 1 or more, got {config.threads}; leave it out for one per core"
            )
        torch.set_num_threads(config.threads)
    if not config.experiment:
        files = [f for f in (config.get("config") or []) if f is not None]
        config.experiment = Path(str(files[-1])).stem if files else "fewshot"
    config_text = parser.dump(config, skip_unset=False)
    built = parser.instantiate(config)
    study = FewShotStudy(**{name: built[name] for name in inspect.signature(FewShotStudy).parameters})
    result = study.run()
    run_dir = runs.claim_version_dir(Path(config.runs_dir) / config.experiment)
    written = write_run_folder(run_dir, result, config_text)
    print(result.to_markdown())
    print(f"imgcls: run folder {run_dir}: {', '.join(written)}", flush=True)
    return run_dir
