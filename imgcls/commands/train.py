"""``imgcls fit | validate | test``: LightningCLI's commands, run by ``ImgclsCLI`` (``predict`` with a
config too: ``imgcls.commands.predict``).

imgcls fit --config configs/eurosat_resnet50.yaml --data.init_args.root PATH
imgcls test --config configs/eurosat_resnet50.yaml --ckpt_path best
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from imgcls.commands.command import TRAINING, Command
from imgcls.commands.lightning import ImgclsCLI


def run_lightning(args: list[str]) -> None:
    """Run LightningCLI on a whole command line (``fit --config ...``)."""
    with warnings.catch_warnings():
        # LightningCLI warns when given args beside a command line: these args are that command line
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        ImgclsCLI(args=args)


def _lightning(name: str) -> Callable[[list[str]], None]:
    def run(argv: list[str]) -> None:
        run_lightning([name, *argv])

    return run


COMMANDS = (
    Command(
        "fit",
        TRAINING,
        "train a model (the run folder gets config, checkpoints, TensorBoard and CSV logs)",
        _lightning("fit"),
    ),
    Command("validate", TRAINING, "score a checkpoint on the validation split", _lightning("validate")),
    Command(
        "test",
        TRAINING,
        "score a checkpoint on the test split and write its report into the run folder",
        _lightning("test"),
    ),
)
