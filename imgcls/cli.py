"""The imgcls command line: LightningCLI with linked data and model, named run folders, clear errors.

imgcls fit --config configs/eurosat_resnet50.yaml --data.root PATH
imgcls test --config configs/eurosat_resnet50.yaml --ckpt_path best
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from imgcls import runs
from imgcls.callbacks import (
    EMA,
    EpochLines,
    PredictionWriter,
    ProgressiveResizing,
    RandomStates,
    RunInfoWriter,
    TestReportWriter,
)
from imgcls.checkpoint_io import AtomicCheckpointIO
from imgcls.data.base import ImageDataModule
from imgcls.errors import ConfigError, ImgclsError
from imgcls.loggers import EvaluationCSVLogger, EvaluationTensorBoardLogger
from imgcls.models.classifier import ImageClassifier, monitor_mode
from imgcls.quiet import silence_library_noise

log = logging.getLogger(__name__)
TRAINER_COMMANDS = {
    "fit": "train a model (the run folder gets config, checkpoints, TensorBoard and CSV logs)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split and write its report into the run folder",
    "predict": "write the top-k classes of every image into the run folder",
}
ANALYSIS_COMMANDS = {
    "summary": "parameters, GFLOPs and memory of a model (nothing trained)",
    "compare": "one table and figures comparing tested runs, seeds grouped with 95% CIs",
}
STUDY_COMMANDS = {
    "sweep": "a study's grid of runs from a sweep file: here, N at a time, or as a Slurm job array",
    "fewshot": "N-way K-shot episodes on a checkpoint's or backbone's features, with 95% CIs",
}


def _option_names(parser: Any) -> list[str]:
    names = []
    for action in getattr(parser, "_actions", []):
        names.append(action.dest)
        subparsers = getattr(action, "_name_parser_map", None) or {}
        for sub in subparsers.values():
            names.extend(_option_names(sub))
    return [n for n in names if n and n != "help" and not n.endswith(".help")]


class ImgclsArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose errors are one line with the closest valid keys, and which
    refuses abbreviated options (argparse would take ``--trainer.max_epoch`` as ``max_epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        unknown = re.findall(
            r"option '([\w.]+)'|Key \"([\w.]+)\"|--([\w.]+) could match|unrecognized arguments: --([\w.]+)",
            message,
        )
        keys = [next(k for k in groups if k) for groups in unknown]
        if keys and "Did you mean" not in message:  # jsonargparse may hand an error back to us
            parser = getattr(ex, "subcommand_parser", None) or self
            options = _option_names(parser)
            close = difflib.get_close_matches(keys[0], options, n=3, cutoff=0.6)
            close += [o for o in options if o.endswith("." + keys[0].rsplit(".", 1)[-1]) and o not in close]
            if close:
                message = message.rstrip(". ") + f". Did you mean: {', '.join(close[:3])}?"
        message = _explain_class_option(message)
        if not self.exit_on_error:
            super().error(message, ex)  # raises, for jsonargparse's own retries
        # one line, no usage dump: the help is one `--help` away
        print(f"imgcls: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)


def _explain_class_option(message: str) -> str:
    """jsonargparse's many-line account of an unknown argument of a ``class_path`` section, as one
    sentence with the closest arguments of that class."""
    match = re.search(
        r"Parser key \"([\w.]+)\".*Problem with given class_path '([\w.]+)':\s*Option '(\w+)' is not accepted",
        message,
        flags=re.DOTALL,
    )
    if match is None:
        return message
    section, class_path, option = match.groups()
    try:
        from jsonargparse import ArgumentParser

        module, _, name = class_path.rpartition(".")
        parser = ArgumentParser()
        # the signature as jsonargparse sees it, **kwargs followed into the base classes
        parser.add_class_arguments(getattr(__import__(module, fromlist=[name]), name), "init")
        accepted = [n.removeprefix("init.") for n in _option_names(parser) if n.startswith("init.")]
    except Exception:  # only a better message: fall back to jsonargparse's
        return message
    close = difflib.get_close_matches(option, accepted, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(f'{section}.init_args.{c}' for c in close)}?" if close else ""
    return f"{section}.init_args.{option} is not an argument of {class_path}.{hint}"


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


def add_run_folder_arguments(parser: Any) -> None:
    """``--experiment``, ``--runs_dir`` and ``--threads``, as every command that makes a run folder has them."""
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


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config in the run folder without clobbering an earlier one.

    ``fit`` writes ``config.yaml``; ``test``/``validate``/``predict`` (and a resumed ``fit``) write
    ``config_<command>.yaml``, numbered if needed, into the run folder of their checkpoint (not into
    the subfolder they log to).
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        folder = runs.run_dir_of_log_dir(trainer.log_dir or trainer.default_root_dir)  # broadcasts
        if trainer.is_global_zero:
            command = getattr(trainer.state.fn, "value", stage)
            name, count = runs.CONFIG, 1
            while (folder / name).exists():
                name = f"config_{command}.yaml" if count == 1 else f"config_{command}_{count}.yaml"
                count += 1
            folder.mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, str(folder / name), skip_unset=False, multifile=self.multifile)
        self.already_saved = True


class ImgclsCLI(LightningCLI):
    """LightningCLI for ``ImageClassifier`` and any ``ImageDataModule``."""

    def __init__(self, args: Any = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", RunConfigSaver)
        kwargs.setdefault("parser_kwargs", {"parser_mode": "yaml"})
        kwargs.setdefault("parser_class", ImgclsArgumentParser)
        self.created_dirs: list[Path] = []
        self.checkpoint_position: dict[str, Any] = {}
        self.run_dir: Path | None = None
        try:
            super().__init__(
                ImageClassifier,
                ImageDataModule,
                subclass_mode_data=True,
                auto_configure_optimizers=False,
                args=args,
                run=run,
                **kwargs,
            )
        except ImgclsError:
            self.discard_failed_run()
            raise

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_run_folder_arguments(parser)
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
        # training recipes, off unless set: --ema.decay 0.999, --progressive_resizing.start_scale 0.5
        parser.add_lightning_class_args(EMA, "ema")
        parser.add_lightning_class_args(ProgressiveResizing, "progressive_resizing")
        parser.add_lightning_class_args(TestReportWriter, "report")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

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
        if ckpt_path is None and self.config.get("subcommand") == "fit":
            config["ckpt_path"] = ckpt_path = requeued_checkpoint(experiment_dir)
        if ckpt_path in runs.CHECKPOINT_ALIASES:
            config["ckpt_path"] = ckpt_path = str(slurm_jobs_checkpoint(experiment_dir, ckpt_path))
        elif ckpt_path and not Path(ckpt_path).is_file():
            raise ConfigError(
                f"--ckpt_path {ckpt_path} does not exist. Pass an existing .ckpt file, or 'best' / 'last' for the "
                f"newest run of experiment {experiment_dir.name!r} under {experiment_dir.parent}."
            )
        # a damaged file fails here, in one line, before anything is created
        self.checkpoint_position = runs.read_checkpoint_position(ckpt_path) if ckpt_path else {}
        if "weights_only" in config and config["weights_only"] is None and self.checkpoint_position:
            # unpickle no code from a checkpoint that needs none (imgcls's own never do)
            config["weights_only"] = self.checkpoint_position["weights_only"]

    def _evaluated_run(self) -> Path | None:
        """The run folder of the checkpoint being evaluated or resumed, if it sits in one."""
        ckpt_path = self._subconfig().get("ckpt_path")
        return runs.run_dir_of_checkpoint(ckpt_path) if ckpt_path else None

    def _claim_run_dir(self) -> Path:
        """A new ``version_N`` folder of the experiment, created by this process alone.

        Only global rank zero claims one: the other processes of a distributed run log nothing, and
        Lightning hands them rank zero's folders (``trainer.log_dir``, checkpoint ``dirpath``).
        """
        if rank_zero_only.rank != 0:
            return runs.next_version_dir(self._experiment_dir())
        folder = runs.claim_version_dir(self._experiment_dir())
        self.created_dirs.append(folder)
        return folder

    def _loggers(self) -> tuple[list[Any], Path]:
        """The loggers of this command and its run folder.

        ``fit`` logs TensorBoard and CSV into the run folder (a new one, or the one it resumes); the
        evaluation commands log into a subfolder of their checkpoint's run (``version_N/test``) at the
        checkpoint's step, so that their values never land on the fit's curves. ``predict`` logs nothing.
        """
        command = self.subcommand or "fit"  # run=False: the caller trains with the objects it gets
        run_dir = self._evaluated_run()
        if run_dir is None:
            run_dir = self._claim_run_dir()
        if command == "predict":
            return [], run_dir
        save_dir, name = str(run_dir.parent.parent), run_dir.parent.name
        if command == "fit":
            # CSV first: its writer warns about, and deletes, a metrics.csv in a folder that another
            # logger has already written to (a resumed run's history is handed back by keep_history)
            # a resumed fit repeats the steps after its checkpoint: TensorBoard drops what the
            # interrupted run logged from there on (purge_step), so no step carries two values
            resumed_at = (
                self.checkpoint_position.get("global_step") if self._subconfig().get("ckpt_path") else None
            )
            purge = {"purge_step": resumed_at} if resumed_at else {}
            loggers = [
                CSVLogger(save_dir, name=name, version=run_dir.name),
                TensorBoardLogger(
                    save_dir, name=name, version=run_dir.name, default_hp_metric=False, **purge
                ),
            ]
            if self._subconfig().get("ckpt_path"):
                # a resume continues in its run folder on purpose: Lightning's warnings that the
                # folder is not empty, and that the CSV log will be deleted, do not apply
                for message, module in (
                    (r"Experiment logs directory .* exists and is not empty", r"lightning\.fabric\.loggers"),
                    (r"Checkpoint directory .* exists and is not empty", r"lightning\.pytorch\.callbacks"),
                ):
                    warnings.filterwarnings("ignore", message=message, module=module)
                keep_history(loggers, resumed_at)
            return loggers, run_dir
        model = self._get(self.config_init, "model")
        evaluation = runs.evaluation_name(
            command,
            self._subconfig().get("ckpt_path"),
            run_dir,
            getattr(model, "test_time_augmentation", "none"),
        )
        log_dir = run_dir / evaluation
        if not log_dir.exists():
            self.created_dirs.append(log_dir)
        # the fit logs an epoch's metrics at the step before the checkpoint's global step
        # (Lightning's batches stepped, minus one): there the evaluation's point meets the epoch's
        position = {
            "checkpoint_step": max((self.checkpoint_position.get("global_step") or 0) - 1, 0),
            "checkpoint_epoch": self.checkpoint_position.get("epoch"),
        }
        version = f"{run_dir.name}/{evaluation}"
        loggers = [
            EvaluationCSVLogger(save_dir, name=name, version=version, **position),
            EvaluationTensorBoardLogger(
                save_dir, name=name, version=version, default_hp_metric=False, **position
            ),
        ]
        return loggers, run_dir

    def _callbacks(self, trainer_config: dict[str, Any]) -> list[Any]:
        """The configured callbacks, with one line per epoch instead of a progress bar when standard
        output is not a terminal (a batch job's log file), and the run-info record of ``fit``."""
        callbacks = list(trainer_config.get("callbacks") or [])
        if trainer_config.get("enable_progress_bar") is False:
            # a config's progress bar would make Lightning refuse --trainer.enable_progress_bar false
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
        elif not sys.stdout.isatty():
            callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)] + [EpochLines()]
        # in every command: Lightning warns when a checkpoint holds the state of a callback that is
        # missing, and RandomStates sets states back only when training starts
        callbacks.append(RandomStates())
        if self.subcommand in ("fit", None):
            callbacks.append(RunInfoWriter())
        return callbacks

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        precision = str(trainer_config.get("precision"))
        if precision.startswith("bf16") and bf16_is_emulated(trainer_config.get("accelerator")):
            log.warning(
                "trainer.precision %s on a CPU without AVX512-BF16 or AMX: bf16 would be emulated, "
                "several times slower than float32 (2.2x to 6.5x measured). Training in 32-true instead; the run's config.yaml "
                "records it. On such a CPU set --trainer.precision 32-true.",
                precision,
            )
            kwargs["precision"] = "32-true"
            self._subconfig()["trainer"]["precision"] = "32-true"
        kwargs["callbacks"] = self._callbacks(trainer_config)
        if not trainer_config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        experiment_dir = self._experiment_dir()
        smoke_test = bool(trainer_config.get("fast_dev_run"))
        own_logger = trainer_config.get("logger") in (None, True) and not smoke_test
        if own_logger:
            kwargs["logger"], self.run_dir = self._loggers()
        else:
            self.run_dir = None
        if self.run_dir is not None:
            # checkpoints of the run, whichever logger comes first (an evaluation logs into a subfolder)
            for callback in kwargs["callbacks"] + self._extra_callbacks():
                if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                    # absolute: a test of the checkpoint names it so, and a relative path saved by
                    # fit would make Lightning warn that the folder changed
                    callback.dirpath = str((self.run_dir / runs.CHECKPOINTS).resolve())
        if trainer_config.get("default_root_dir") is None:
            # fast_dev_run swaps the logger for a dummy: keep its files out of the working directory
            # and apart from real runs
            root = self.run_dir or (experiment_dir / "fast_dev_run" if smoke_test else experiment_dir)
            kwargs["default_root_dir"] = str(root)
        return super().instantiate_trainer(**kwargs)

    def _extra_callbacks(self) -> list[Any]:
        """The callbacks configured as sections of their own (``checkpoint``, ``report``...)."""
        return [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]

    # --- after each command: where its files are ---------------------------------------------

    def _say_where(self, files: tuple[str, ...], folder: Path | None) -> None:
        if folder is None or not self.trainer.is_global_zero:
            return
        present = [name for name in files if (folder / name).exists()]
        print(f"imgcls: run folder {_relative(folder)}: {', '.join(present)}", flush=True)
        tensorboard = Path(sys.executable).parent / "tensorboard"
        command = str(tensorboard) if tensorboard.is_file() else "tensorboard"
        experiment = (self.run_dir or folder).parent  # a report beside the run's (test-last/) too
        print(f"imgcls: curves: {_relative(command)} --logdir {_relative(experiment)}", flush=True)

    def after_fit(self) -> None:
        self._say_where(runs.FIT_FILES, self.run_dir)

    def after_test(self) -> None:
        writer = next((c for c in self.trainer.callbacks if isinstance(c, TestReportWriter)), None)
        folder = writer.folder if writer is not None else None
        self._say_where(runs.TEST_FILES, folder)

    def after_predict(self) -> None:
        writer = next((c for c in self.trainer.callbacks if isinstance(c, PredictionWriter)), None)
        if writer is not None and writer.path is not None and self.trainer.is_global_zero:
            print(f"imgcls: predictions in {writer.path}", flush=True)

    def discard_failed_run(self) -> None:
        """Remove what this command created when it failed before writing anything of worth:
        a run folder (or evaluation subfolder) holding no checkpoint and no report."""
        for folder in reversed(self.created_dirs):
            if not folder.is_dir():
                continue
            keep = [p for p in folder.rglob("*") if p.suffix == ".ckpt" or p.name in runs.TEST_FILES]
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)


def slurm_jobs_checkpoint(experiment_dir: Path, which: str) -> Path:
    """``best``/``last`` of the experiment's newest run, or, inside a Slurm job that trained a run of
    it, of that run: a job's ``test --ckpt_path best`` tests its own fit, whatever other jobs of the
    experiment have started since."""
    job = runs.slurm_job()
    run_dir = runs.run_of_slurm_job(experiment_dir, job) if job is not None else None
    if run_dir is not None and (run_dir / runs.CHECKPOINTS / f"{which}.ckpt").is_file():
        return run_dir / runs.CHECKPOINTS / f"{which}.ckpt"
    return runs.find_checkpoint(experiment_dir, which)


def requeued_checkpoint(experiment_dir: Path) -> str | None:
    """Where a Slurm job that was requeued (``SLURM_RESTART_COUNT`` > 0) resumes its fit: the
    ``last.ckpt`` of the run folder it trained before (``runs.resume_checkpoint``), so that it
    continues in that ``version_N`` with its epoch and step counts. None outside Slurm, on a job's
    first start, or when the job was stopped before it finished an epoch."""
    job = runs.slurm_job()
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    if job is None or not restarts.isdigit() or int(restarts) == 0:
        return None
    run_dir = runs.run_of_slurm_job(experiment_dir, job)
    checkpoint = runs.resume_checkpoint(run_dir) if run_dir is not None else None
    if rank_zero_only.rank == 0:
        where = f"{run_dir} from {checkpoint.name}" if checkpoint else "from scratch: it saved no checkpoint"
        print(f"imgcls: Slurm job {job} restart {restarts}: resuming {where}", flush=True)
    return str(checkpoint) if checkpoint is not None else None


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def keep_history(loggers: list[Any], upto_step: int | None) -> None:
    """Let a resumed fit continue the CSV log of the run instead of starting it anew.

    Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts; the rows the run had
    logged up to the checkpoint are handed back to it, to be written first. Rows after the
    checkpoint's global step belong to epochs that the resumed run repeats, and are dropped.
    """
    import csv

    for logger in loggers:
        if not isinstance(logger, CSVLogger) or rank_zero_only.rank != 0:
            continue
        path = Path(logger.log_dir) / runs.METRICS_CSV
        if not path.is_file():
            continue
        with path.open(newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
        # the checkpoint's own epoch logged at steps before its global step; from that step on, the
        # rows belong to epochs the resumed run trains again
        rows = [r for r in rows if upto_step is None or r.get("step", 0) < upto_step]
        for row in rows:
            for key in ("step", "epoch"):
                if key in row:
                    row[key] = int(row[key])
        logger.experiment.metrics[:0] = rows


def bf16_is_emulated(accelerator: Any) -> bool:
    """Whether a Trainer given this ``accelerator`` setting would train on a CPU that emulates bf16.

    There a bf16 ResNet-18 step is slower than float32: by a factor of tens on AVX2 (13 s against 2 s
    for a batch of 128 at 64 px on a 2-core EPYC), about 2x on AVX-512 without AVX512-BF16, so a
    recipe's bf16 would turn a fast run into a slow one.
    """
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not (torch.cuda.is_available() or torch.backends.mps.is_available())
    )
    return on_cpu and not cpu_has_native_bf16()


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU runs bf16 arithmetic natively (AVX512-BF16 or AMX), rather than emulating it.

    The CPU's own flags decide where Linux lists them. oneDNN's ``_is_mkldnn_bf16_supported`` says
    yes on any AVX-512 CPU, where bf16 is emulated: on a 2-core AVX-512 Xeon without AVX512-BF16 a
    ResNet-18 step at 64 px ran at 63 images/s in bf16 + channels_last against 140 in float32. Its
    answer is used only where no flags can be read.
    """
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The x86 feature flags Linux lists in ``cpuinfo``; None elsewhere (other systems, ARM)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return set(line.split(":", 1)[1].split()) if line is not None else None


def _user_message(err: BaseException) -> str:
    """The message of an error, without the worker traceback a DataLoader wraps around it."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[-1] if ": " in last else last
    return text


def top_level_help() -> str:
    """What ``imgcls --help`` prints: every command, trainer and analysis alike."""
    width = max(len(name) for name in (*TRAINER_COMMANDS, *ANALYSIS_COMMANDS, *STUDY_COMMANDS))
    lines = ["usage: imgcls COMMAND [options]   (imgcls COMMAND --help for the options of one)", ""]
    lines += ["training and evaluation (LightningCLI; --config FILE, any --section.key VALUE):"]
    lines += [f"  {name:<{width}}  {text}" for name, text in TRAINER_COMMANDS.items()]
    lines += ["", "reading models and run folders:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in ANALYSIS_COMMANDS.items()]
    lines += ["", "studies:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in STUDY_COMMANDS.items()]
    lines += ["", "example: imgcls fit --config configs/eurosat_sample.yaml"]
    return "\n".join(lines)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``imgcls`` and ``lightning_cli.py``.

    ``fit``/``validate``/``test``/``predict`` go to LightningCLI; ``summary`` and ``compare`` read
    models and run folders without training (``imgcls.analysis.commands``).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    silence_library_noise()
    argv = sys.argv[1:] if args is None else list(args)
    if not argv or argv[0] in ("-h", "--help"):
        print(top_level_help())
        sys.exit(0 if argv else 2)
    try:
        if argv[0] in ANALYSIS_COMMANDS:
            from imgcls.analysis.commands import run_command

            run_command(argv[0], argv[1:])
            return
        if argv[0] == "sweep":
            from imgcls.sweep import sweep_command

            sys.exit(sweep_command(argv[1:]))
        if argv[0] == "fewshot":
            from imgcls.fewshot.command import fewshot_command

            fewshot_command(argv[1:])
            return
        if argv[0] not in TRAINER_COMMANDS and not argv[0].startswith("-"):
            commands = [*TRAINER_COMMANDS, *ANALYSIS_COMMANDS, *STUDY_COMMANDS]
            close = difflib.get_close_matches(argv[0], commands, n=1)
            hint = f" Did you mean: {close[0]}?" if close else ""
            raise ConfigError(f"unknown command {argv[0]!r}; see `imgcls --help`.{hint}")
        ImgclsCLI(args=args)
    except ImgclsError as err:
        print(f"imgcls: error: {_user_message(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
