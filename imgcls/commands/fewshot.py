"""``imgcls fewshot``: a few-shot study from a YAML config into a run folder of its own.

imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --ckpt_path runs/x/version_0/checkpoints/best.ckpt
imgcls fewshot --config configs/fewshot/eurosat_5way5shot.yaml --backbone resnet18 --pretrained true --k_shot 1

The run folder ``<runs_dir>/<experiment>/version_N`` holds the resolved ``config.yaml``,
``fewshot.json`` (per method: mean accuracy, std, 95% CI, seconds), ``episodes.csv`` (every episode's
classes and accuracy) and TensorBoard scalars; ``imgcls compare`` reads it beside other runs.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from jsonargparse import ActionConfigFile

from imgcls import runs
from imgcls.commands.arguments import CommandParser, add_run_folder_arguments, experiment_name, set_threads
from imgcls.commands.command import STUDIES, Command
from imgcls.fewshot.run_folder import write_run_folder
from imgcls.fewshot.study import FewShotStudy

DESCRIPTION = (
    "N-way K-shot episodes from a datamodule's split, scored with a backbone's frozen features (prototypes, "
    "linear) or by fine-tuning it per episode; mean accuracy with 95% confidence intervals. The model is an "
    "imgcls checkpoint (--ckpt_path) or a backbone name with --pretrained. Results go to a new "
    "<runs_dir>/<experiment>/version_N: config.yaml, fewshot.json, episodes.csv, TensorBoard scalars."
)
EXAMPLE_CONFIG = "configs/fewshot/eurosat_5way5shot.yaml"


def fewshot_parser() -> CommandParser:
    """The parser of ``imgcls fewshot``: --config, the study's arguments, the run folder's."""
    parser = CommandParser("imgcls fewshot", DESCRIPTION, example=EXAMPLE_CONFIG)
    parser.add_argument(
        "--config", action=ActionConfigFile, help=f"A few-shot YAML config ({EXAMPLE_CONFIG})."
    )
    parser.add_class_arguments(FewShotStudy, None, help="The study (FewShotStudy's arguments)")
    add_run_folder_arguments(parser.add_argument_group("Output"))
    return parser


def fewshot_command(argv: list[str]) -> Path:
    """Run ``imgcls fewshot``; return the run folder it wrote."""
    parser = fewshot_parser()
    config = parser.parse(argv)
    set_threads(config.threads)
    config.experiment = experiment_name(config, default="fewshot")
    config_text = parser.dump(config, skip_unset=False)
    built = parser.instantiate(config)
    study = FewShotStudy(**{name: built[name] for name in inspect.signature(FewShotStudy).parameters})
    result = study.run()
    run_dir = runs.claim_version_dir(Path(config.runs_dir) / config.experiment)
    written = write_run_folder(run_dir, result, config_text)
    print(result.to_markdown())
    print(f"imgcls: run folder {run_dir}: {', '.join(written)}", flush=True)
    return run_dir


COMMANDS = (
    Command(
        "fewshot",
        STUDIES,
        "N-way K-shot episodes on a checkpoint's or backbone's features, with 95% CIs",
        fewshot_command,
    ),
)
