"""``ImgclsCLI``: LightningCLI for ``ImageClassifier`` and any ``ImageDataModule``, with linked data and
model, named run folders and one-line errors. ``imgcls fit|validate|test|predict`` run it
(``imgcls.commands.train``).
"""

from __future__ import annotations

import shlex
import shutil
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from imgcls import runs
from imgcls.callbacks import (
    EMA,
    ContractWriter,
    EpochLines,
    PredictionWriter,
    ProgressiveResizing,
    RandomStates,
    RunInfoWriter,
    TerminationCheckpoint,
    TestReportWriter,
)
from imgcls.callbacks.guards import ValidationWithinRun
from imgcls.callbacks.termination import SIGNAL_NAMES
from imgcls.checkpoint_io import AtomicCheckpointIO
from imgcls.commands.arguments import (
    add_run_folder_arguments,
    experiment_name,
    explain,
    option_strings,
    set_threads,
)
from imgcls.data.base import ImageDataModule
from imgcls.errors import ConfigError, ImgclsError, OutOfMemoryError
from imgcls.loggers import EvaluationCSVLogger, EvaluationTensorBoardLogger, keep_history
from imgcls.models.classifier import ImageClassifier, monitor_mode
from imgcls.precision import training_precision
from imgcls.storage import out_of_memory


class ImgclsArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose errors are one line (``imgcls.commands.arguments.explain``), and
    which refuses abbreviated options (argparse would take ``--trainer.max_epoch`` as ``max_epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        parser = getattr(ex, "subcommand_parser", None) or self
        message = explain(message, option_strings(parser))
        if not self.exit_on_error:
            super().error(message, ex)  # raises, for jsonargparse's own retries
        # one line, no usage dump: the help is one `--help` away
        print(f"imgcls: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)


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
                name = runs.numbered_filename(f"config_{command}.yaml", count)
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
        self.experiment_dir = Path("runs", "default")  # set when the arguments are parsed
        self.run_dir: Path | None = None
        self.given_args = [str(a) for a in (sys.argv[1:] if args is None else args)]
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
        except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError (CUDA) is a RuntimeError
            if "is killed by signal: Terminated" in str(err):
                # SIGTERM to the whole process group (a cancelled Slurm step) ends the loader's workers first
                print(self._stopped_line(SIGNAL_NAMES[signal.SIGTERM]), flush=True)
                sys.exit(128 + signal.SIGTERM)
            if not out_of_memory(err):
                raise
            self.discard_failed_run()
            raise OutOfMemoryError(self._out_of_memory_line(err)) from None
        except SIGTERMException:
            # Lightning stops at the end of the batch the signal came in (a first Ctrl-C too, see
            # TerminationCheckpoint) and calls that a clean exit
            signum = (
                next((c.signum for c in self.trainer.callbacks if isinstance(c, TerminationCheckpoint)), None)
                or signal.SIGTERM
            )
            print(self._stopped_line(SIGNAL_NAMES[signum]), flush=True)
            sys.exit(128 + signum)
        except SystemExit as exit_:
            # Ctrl-C: Lightning shuts the run down, then exits with 1
            if exit_.code != 1 or getattr(self, "trainer", None) is None or not self.trainer.interrupted:
                raise
            print(self._stopped_line(SIGNAL_NAMES[signal.SIGINT]), flush=True)
            sys.exit(128 + signal.SIGINT)

    def _stopped_line(self, signal_name: str) -> str:
        """What a run stopped by a signal saved, and the command that resumes it."""
        if self.subcommand not in ("fit", None):
            return f"imgcls: {self.subcommand} stopped by {signal_name}; it wrote no report: run it again"
        last = self.run_dir / runs.CHECKPOINTS / "last.ckpt" if self.run_dir is not None else None
        if last is None or not last.is_file():
            return f"imgcls: stopped by {signal_name} before the first epoch ended: nothing to resume; run it again"
        position = runs.read_checkpoint_position(last)
        epoch, batches = position.get("epoch"), position.get("batches_in_epoch")
        args = [a for a in self.given_args if not a.startswith("--ckpt_path")]
        if "--ckpt_path" in self.given_args:  # its value too
            at = args.index(self.given_args[self.given_args.index("--ckpt_path") + 1])
            del args[at]
        command = shlex.join(["imgcls", *args, "--ckpt_path", str(last)])
        if batches:  # written when the signal came, in the middle of an epoch
            held = f"epoch {epoch + 1} up to its batch {batches} (resuming goes on with the next batch)"
        else:
            number = epoch + 1 if epoch is not None else "?"
            held = f"the end of epoch {number} (the interrupted epoch starts again on resume)"
        return f"imgcls: stopped by {signal_name}; {last} holds {held}. Resume: {command}"

    def _out_of_memory_line(self, err: BaseException) -> str:
        config = self._subconfig() if getattr(self, "config", None) is not None else {}
        arguments = (config.get("data") or {}).get("init_args") or {}
        batch, side = arguments.get("batch_size"), arguments.get("image_size")
        where = "the GPU" if isinstance(err, torch.OutOfMemoryError) else "memory"
        return (
            f"out of {where} with data.init_args.batch_size {batch} at image_size {side}: lower "
            "--data.init_args.batch_size (and keep the effective batch with --trainer.accumulate_grad_batches), "
            "or let Lightning's BatchSizeFinder find one that fits; the checkpoints already written are intact"
        )

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

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        # Lightning's model summary counts FLOPs on the model's example input: without one its table
        # says "Total FLOPs: 0"
        side = getattr(self.datamodule, "image_size", None)
        if side and self.model.example_input_array is None:
            self.model.example_input_array = torch.zeros(1, self.datamodule.in_chans, side, side)

    # --- run folders and checkpoint aliases -----------------------------------------------------

    def _subconfig(self) -> Any:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        config = self._subconfig()
        set_threads(config.get("threads"))
        # the run folder's name, recorded in the config the run saves
        config["experiment"] = experiment_name(config, default="default")
        experiment_dir = self.experiment_dir = Path(config.get("runs_dir") or "runs") / config["experiment"]
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is None and self.config.get("subcommand") == "fit":
            requeued, line = runs.requeued_checkpoint(experiment_dir)
            if line is not None and rank_zero_only.rank == 0:
                print(line, flush=True)
            config["ckpt_path"] = ckpt_path = str(requeued) if requeued is not None else None
        if ckpt_path in runs.CHECKPOINT_ALIASES:
            config["ckpt_path"] = ckpt_path = str(runs.checkpoint_of_alias(experiment_dir, ckpt_path))
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
            return runs.next_version_dir(self.experiment_dir)
        folder = runs.claim_version_dir(self.experiment_dir)
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
        callbacks.append(ContractWriter())  # every checkpoint says what inference needs
        if self.subcommand in ("fit", None):
            callbacks.append(RunInfoWriter())
            callbacks.append(TerminationCheckpoint())  # SIGTERM mid-epoch: last.ckpt where the run stands
            callbacks.append(ValidationWithinRun())
        return callbacks

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        precision = training_precision(trainer_config.get("precision"), trainer_config.get("accelerator"))
        if precision != trainer_config.get("precision"):
            kwargs["precision"] = self._subconfig()["trainer"]["precision"] = precision
        kwargs["callbacks"] = self._callbacks(trainer_config)
        if not trainer_config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
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
            root = self.run_dir or (
                self.experiment_dir / "fast_dev_run" if smoke_test else self.experiment_dir
            )
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
        self._say_why_stopped()
        self._say_where(runs.FIT_FILES, self.run_dir)

    def _say_why_stopped(self) -> None:
        # Lightning tells why early stopping ended a fit on a logger that has no handler: without this
        # line a fit that went to NaN in its first epoch ends as quietly as one that converged
        if not self.trainer.is_global_zero:
            return
        for callback in self.trainer.callbacks:
            if not isinstance(callback, EarlyStopping) or not callback.stopping_reason_message:
                continue
            planned = self.trainer.max_epochs
            of_planned = f" of {planned}" if planned and planned > 0 else ""
            message = " ".join(callback.stopping_reason_message.split())
            print(
                f"imgcls: training stopped after epoch {callback.stopped_epoch + 1}{of_planned}: {message}",
                flush=True,
            )
            if callback.stopping_reason == EarlyStoppingReason.NON_FINITE_METRIC:
                print(
                    "imgcls: the run diverged: lower model.optimizer's lr, or train at trainer.precision "
                    "32-true (and model.compile false) to see whether reduced precision caused it",
                    flush=True,
                )

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


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
