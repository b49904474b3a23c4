"""The imgcls command line: LightningCLI with linked data and model, named run folders, clear errors.

imgcls fit --config configs/eurosat_resnet50.yaml --data.root PATH
imgcls test --config configs/eurosat_resnet50.yaml --ckpt_path best
"""

from __future__ import annotations

import difflib
import logging
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from imgcls.callbacks import TensorBoardReports
from imgcls.data.base import ImageDataModule
from imgcls.errors import ConfigError, ImgclsError
from imgcls.models.classifier import ImageClassifier, monitor_mode
from imgcls.reporting import PredictionWriter, RunInfoWriter, TestReportWriter
from imgcls.throughput import ThroughputMonitor

log = logging.getLogger(__name__)
CHECKPOINT_ALIASES = ("best", "last")


def _version_number(folder: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def find_checkpoint(experiment_dir: Path, which: str) -> Path:
    """The ``best`` or ``last`` checkpoint of the newest run of an experiment that has one."""
    versions = sorted(experiment_dir.glob("version_*"), key=_version_number, reverse=True)
    for version in versions:
        candidate = version / "checkpoints" / f"{which}.ckpt"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"--ckpt_path {which}: no checkpoints/{which}.ckpt in any run under {experiment_dir}. Run `fit` with this "
        "config first, or pass a checkpoint file (--ckpt_path PATH)."
    )


def _option_names(parser: Any) -> list[str]:
    names = []
    for action in getattr(parser, "_actions", []):
        names.append(action.dest)
        subparsers = getattr(action, "_name_parser_map", None) or {}
        for sub in subparsers.values():
            names.extend(_option_names(sub))
    return [n for n in names if n and n != "help"]


class ImgclsArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose errors about unknown keys suggest the closest valid ones."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        unknown = re.findall(r"option '([\w.]+)'|Key \"([\w.]+)\"|--([\w.]+) could match", message)
        keys = [next(k for k in groups if k) for groups in unknown]
        if keys:
            parser = getattr(ex, "subcommand_parser", None) or self
            options = _option_names(parser)
            close = difflib.get_close_matches(keys[0], options, n=3, cutoff=0.6)
            close += [o for o in options if o.endswith("." + keys[0].rsplit(".", 1)[-1]) and o not in close]
            if close:
                message += f". Did you mean: {', '.join(close[:3])}?"
        super().error(message, ex)


def _string_values(node: Any) -> str:
    if isinstance(node, dict):
        return " ".join(_string_values(v) for v in node.values())
    if isinstance(node, list):
        return " ".join(_string_values(v) for v in node)
    return node if isinstance(node, str) else ""


def _piece_names(config: Any) -> list[str]:
    """Names of the model and optimizer pieces (``configs/base/{models,optim}/*.yaml``) added to a run.

    Variants of one study (``--model configs/base/models/resnet50.yaml``) then get run folders of their
    own. Pieces that the config files name themselves are part of the study, not a variant.
    """
    files = [Path(str(f)) for f in (config.get("config") or []) if f is not None]
    own = " ".join(_string_values(yaml.safe_load(f.read_text())) for f in files if f.is_file())
    model = config.get("model")
    candidates = [model, model.get("optimizer")] if model is not None else []
    names = []
    for group in candidates:
        path = group.get("__path__") if hasattr(group, "get") else None
        if path is None:
            continue
        path = Path(str(path))
        if path.parent.name in ("models", "optim") and f"{path.parent.name}/{path.name}" not in own:
            names.append(path.stem)
    return names


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config beside the run's logs without clobbering an earlier one.

    ``fit`` writes ``config.yaml``; ``test``/``validate``/``predict`` (and a resumed ``fit``) write
    ``config_<stage>.yaml``, numbered if needed, into the run folder of their checkpoint.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved or trainer.log_dir is None:
            return
        folder = Path(trainer.log_dir)
        stage = getattr(trainer.state.fn, "value", stage)
        name = "config.yaml"
        count = 1
        while (folder / name).exists():
            name = f"config_{stage}.yaml" if count == 1 else f"config_{stage}_{count}.yaml"
            count += 1
        self.config_filename = name
        super().setup(trainer, pl_module, stage)


class ImgclsCLI(LightningCLI):
    """LightningCLI for ``ImageClassifier`` and any ``ImageDataModule``."""

    def __init__(self, args: Any = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("parser_kwargs", {"parser_mode": "yaml"})
        kwargs.setdefault("parser_class", ImgclsArgumentParser)
        super().__init__(
            ImageClassifier,
            ImageDataModule,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            args=args,
            run=run,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--experiment",
            type=str | None,
            default=None,
            help="Run folder name: runs go to <runs_dir>/<experiment>/version_N. Default: the last config file's name.",
        )
        parser.add_argument(
            "--runs_dir", type=str, default="runs", help="Folder that holds every experiment's runs."
        )
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="CPU threads of torch's operators (torch.set_num_threads). Default: PyTorch's, one per core. "
            "On a machine shared with other jobs set it to the cores this run may use; too many threads "
            "for the free cores make every step wait on the slowest.",
        )
        for attribute in ("num_classes", "in_chans", "class_names"):
            parser.link_arguments(f"data.{attribute}", f"model.{attribute}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.filename": "best", "checkpoint.save_top_k": 1})
        # last.ckpt by a checkpoint of its own: since Lightning 2.6, ModelCheckpoint(save_last=True)
        # rewrites last.ckpt only when a top-k checkpoint is saved at the same step, so it would hold
        # the best epoch, and a resume from it would lose every epoch after that
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.filename": "last",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.patience": 10})
        for key in ("checkpoint", "early_stopping"):
            parser.link_arguments("model.monitor", f"{key}.monitor")
            parser.link_arguments("model.monitor", f"{key}.mode", compute_fn=monitor_mode)
        parser.add_lightning_class_args(TestReportWriter, "report")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(RunInfoWriter, "run_info")
        parser.add_lightning_class_args(TensorBoardReports, "tensorboard")
        parser.add_lightning_class_args(ThroughputMonitor, "throughput")

    # --- run folders and checkpoint aliases -----------------------------------------------------

    def _subconfig(self) -> Any:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def _experiment_dir(self) -> Path:
        config = self._subconfig()
        name = config.get("experiment")
        if not name:
            files = [f for f in (config.get("config") or []) if f is not None]
            name = Path(str(files[-1])).stem if files else "default"
            name = "-".join([name, *_piece_names(config)])
            config["experiment"] = name
        return Path(config.get("runs_dir") or "runs") / name

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        config = self._subconfig()
        threads = config.get("threads")
        if threads is not None:
            if threads < 1:
                raise ConfigError(
                    f"--threads must be 1 or more, got {threads}; leave it out for one per core"
                )
            torch.set_num_threads(threads)
        experiment_dir = self._experiment_dir()
        ckpt_path = config.get("ckpt_path")
        if ckpt_path in CHECKPOINT_ALIASES:
            config["ckpt_path"] = str(find_checkpoint(experiment_dir, ckpt_path))
        elif ckpt_path and not Path(ckpt_path).is_file():
            raise ConfigError(
                f"--ckpt_path {ckpt_path} does not exist. Pass an existing .ckpt file, or 'best' / 'last' for the "
                f"newest run of experiment {experiment_dir.name!r} under {experiment_dir.parent}."
            )

    def _run_version(self) -> int | None:
        """Reuse the run folder of the checkpoint being evaluated or resumed."""
        ckpt_path = self._subconfig().get("ckpt_path")
        if not ckpt_path:
            return None
        folder = Path(ckpt_path).resolve().parent.parent
        experiment_dir = self._experiment_dir().resolve()
        if folder.parent == experiment_dir and _version_number(folder) >= 0:
            return _version_number(folder)
        return None

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        precision = str(trainer_config.get("precision"))
        if precision.startswith("bf16") and bf16_is_emulated(trainer_config.get("accelerator")):
            log.warning(
                "trainer.precision %s on a CPU without AVX512-BF16 or AMX: bf16 would be emulated, "
                "tens of times slower than float32. Training in 32-true instead; the run's config.yaml "
                "records it. On such a CPU set --trainer.precision 32-true.",
                precision,
            )
            kwargs["precision"] = "32-true"
            self._subconfig()["trainer"]["precision"] = "32-true"
        experiment_dir = self._experiment_dir()
        if trainer_config.get("default_root_dir") is None:
            # fast_dev_run swaps the logger for a dummy: keep its files out of the working directory
            # and apart from real runs
            smoke_test = bool(trainer_config.get("fast_dev_run"))
            kwargs["default_root_dir"] = str(
                experiment_dir / "fast_dev_run" if smoke_test else experiment_dir
            )
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = TensorBoardLogger(
                save_dir=str(experiment_dir.parent),
                name=experiment_dir.name,
                version=self._run_version(),
                default_hp_metric=False,
            )
        return super().instantiate_trainer(**kwargs)


def bf16_is_emulated(accelerator: Any) -> bool:
    """Whether a Trainer given this ``accelerator`` setting would train on a CPU that emulates bf16.

    There a bf16 ResNet-18 step is slower than float32 by a factor of tens (13 s against 2 s for a
    batch of 128 at 64 px on a 2-core AVX2 EPYC), so a recipe's bf16 would turn a fast run into a
    stalled one.
    """
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not (torch.cuda.is_available() or torch.backends.mps.is_available())
    )
    return on_cpu and not cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), rather than emulating it."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


def _user_message(err: BaseException) -> str:
    """The message of an error, without the worker traceback a DataLoader wraps around it."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[-1] if ": " in last else last
    return text


ANALYSIS_COMMANDS = ("summary", "compare")


def main(args: list[str] | None = None) -> None:
    """Entry point of ``imgcls`` and ``lightning_cli.py``.

    ``fit``/``validate``/``test``/``predict`` go to LightningCLI; ``summary`` and ``compare`` read
    models and run folders without training (``imgcls.analysis.commands``).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv and argv[0] in ANALYSIS_COMMANDS:
            from imgcls.analysis.commands import run_command

            run_command(argv[0], argv[1:])
            return
        ImgclsCLI(args=args)
    except ImgclsError as err:
        print(f"imgcls: error: {_user_message(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
