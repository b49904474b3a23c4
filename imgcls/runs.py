"""The run folder: what ``runs/<experiment>/version_N`` holds and how its parts are named.

The writers (the CLI and ``imgcls.callbacks``) and the readers (``imgcls.analysis``, the notebooks)
both depend on this module and never on each other. It imports no training code.

A run folder::

    config.yaml, config_<command>.yaml     resolved config of fit, then of later commands
    hparams.yaml                            the model's hyperparameters (Lightning)
    metrics.csv, events.out.tfevents.*      the fit's curves (CSVLogger, TensorBoard)
    run_info.json                           dataset, parameters, GFLOPs, epoch times (during fit)
    checkpoints/best.ckpt, last.ckpt
    hpc_ckpt_N.ckpt                         Lightning's mid-epoch save on Slurm's requeue signal
    metrics.json, classification_report.csv, confusion_matrix.csv/.png, predictions.csv,
    examples.png, class_distribution.csv/.png             after test of best.ckpt
    test-<checkpoint>[-tta-<mode>]/         the same, for another checkpoint or test-time augmentation
    predict[-tta-<mode>][_N].csv            after predict; a later predict numbers its CSV (_2, _3...)
    validate/, test/, test-last/ ...        TensorBoard and CSV logs of each evaluation, at the step of
                                            the checkpoint it evaluated: apart from the fit's curves

A few-shot run (``imgcls fewshot``) is a run folder of its own: config.yaml, fewshot.json (per method:
mean accuracy, std, 95% CI), episodes.csv (every episode's classes and accuracy) and TensorBoard events.

``RUN_SETTINGS`` names what in config.yaml tells runs apart: TensorBoard's hparams tab shows some of it,
seed groups (``imgcls.analysis.compare``) are the runs that agree on all of it but the seed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from imgcls.errors import ConfigError, DataError

CONFIG = "config.yaml"
HPARAMS = "hparams.yaml"
METRICS_CSV = "metrics.csv"
RUN_INFO = "run_info.json"
CHECKPOINTS = "checkpoints"
CHECKPOINT_ALIASES = ("best", "last")
TEST_METRICS = "metrics.json"
CLASSIFICATION_REPORT = "classification_report.csv"
CONFUSION_MATRIX = "confusion_matrix.csv"
CONFUSION_MATRIX_FIGURE = "confusion_matrix.png"
PREDICTIONS = "predictions.csv"
EXAMPLES_FIGURE = "examples.png"
CLASS_DISTRIBUTION = "class_distribution.csv"
CLASS_DISTRIBUTION_FIGURE = "class_distribution.png"
PREDICT_CSV = "predict.csv"
FEWSHOT_RESULTS = "fewshot.json"
FEWSHOT_EPISODES = "episodes.csv"
EVENTS_GLOB = "events.out.tfevents.*"
# Lightning saves these into the run folder (trainer.default_root_dir) on Slurm's pre-timeout signal
HPC_CHECKPOINT_GLOB = "hpc_ckpt_*.ckpt"
# files whose presence makes a folder a run (an empty TensorBoard event file alone does not)
RUN_MARKERS = (CONFIG, HPARAMS, TEST_METRICS, RUN_INFO, METRICS_CSV, FEWSHOT_RESULTS)
# what a run folder holds after each command, for the lines that say so
FIT_FILES = (CONFIG, RUN_INFO, METRICS_CSV, f"{CHECKPOINTS}/best.ckpt", f"{CHECKPOINTS}/last.ckpt")
TEST_FILES = (
    TEST_METRICS,
    CLASSIFICATION_REPORT,
    CONFUSION_MATRIX,
    CONFUSION_MATRIX_FIGURE,
    PREDICTIONS,
    EXAMPLES_FIGURE,
    CLASS_DISTRIBUTION,
    CLASS_DISTRIBUTION_FIGURE,
)


def version_number(folder: Path) -> int:
    """N of a ``version_N`` folder; -1 for any other name."""
    match = re.fullmatch(r"version_(\d+)", Path(folder).name)
    return int(match.group(1)) if match else -1


def version_dirs(experiment_dir: Path) -> list[Path]:
    """The ``version_N`` folders of an experiment, oldest first."""
    folders = [p for p in Path(experiment_dir).glob("version_*") if version_number(p) >= 0 and p.is_dir()]
    return sorted(folders, key=version_number)


def is_run_dir(folder: Path) -> bool:
    """Whether ``folder`` is one run: it holds a config, hparams, metrics, a report or checkpoints."""
    folder = Path(folder)
    return folder.is_dir() and (
        any((folder / name).is_file() for name in RUN_MARKERS)
        or any((folder / CHECKPOINTS).glob("*.ckpt"))
        or any(_has_scalars(p) for p in folder.glob(EVENTS_GLOB))
    )


def _has_scalars(events: Path) -> bool:
    # an event file of a run that never logged holds only its 88-byte header
    return events.stat().st_size > 100


def next_version_dir(experiment_dir: Path) -> Path:
    """The ``version_N`` folder after the newest one of an experiment (not created)."""
    existing = version_dirs(experiment_dir)
    return Path(experiment_dir) / f"version_{version_number(existing[-1]) + 1 if existing else 0}"


def claim_version_dir(experiment_dir: Path, attempts: int = 1000) -> Path:
    """Create the next free ``version_N`` folder of an experiment and return it.

    The folder is made with ``mkdir`` that fails if it exists, so two runs started at once with the
    same experiment name can never share one: the slower takes the next number.
    """
    experiment_dir = Path(experiment_dir)
    experiment_dir.mkdir(parents=True, exist_ok=True)
    number = version_number(next_version_dir(experiment_dir))
    for _ in range(attempts):
        folder = experiment_dir / f"version_{number}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1
    raise ConfigError(f"could not create a new version_N folder in {experiment_dir}")


def find_checkpoint(experiment_dir: Path, which: str) -> Path:
    """The ``best`` or ``last`` checkpoint of the newest run of an experiment that has one.

    Raises:
        ConfigError: no run of the experiment has that checkpoint.
    """
    for version in reversed(version_dirs(experiment_dir)):
        candidate = version / CHECKPOINTS / f"{which}.ckpt"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"--ckpt_path {which}: no {CHECKPOINTS}/{which}.ckpt in any run under {experiment_dir}. Run `fit` with this "
        "config first, or pass a checkpoint file (--ckpt_path PATH)."
    )


def run_dir_of_checkpoint(ckpt_path: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to (``.../version_N/checkpoints/x.ckpt``, or Lightning's
    ``.../version_N/hpc_ckpt_1.ckpt``), else None."""
    path = Path(ckpt_path).resolve()
    if path.parent.name == CHECKPOINTS and version_number(path.parent.parent) >= 0:
        return path.parent.parent
    if path.match(HPC_CHECKPOINT_GLOB) and version_number(path.parent) >= 0:
        return path.parent
    return None


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a fit of this run resumes from: ``last.ckpt``, the end of its last finished
    epoch; None when the run has none (or a damaged one).

    Lightning's ``hpc_ckpt_N.ckpt``, saved on Slurm's requeue signal in the middle of an epoch, is
    not taken: a requeued job repeats the unfinished epoch from ``last.ckpt`` and ends where an
    uninterrupted run would. (A SIGTERM in the middle of an epoch rewrites ``last.ckpt`` there, with the
    training loader's place, and the resume goes on from the next batch: ``TerminationCheckpoint``.)
    """
    last = Path(run_dir) / CHECKPOINTS / "last.ckpt"
    if not last.is_file():
        return None
    try:
        read_checkpoint_position(last)
    except DataError:
        return None
    return last


def slurm_job() -> str | None:
    """The Slurm job this process belongs to, as ``scontrol requeue`` names it (``123`` or the array
    task ``123_4``); None outside Slurm. A requeued job keeps its id."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def read_checkpoint_position(ckpt_path: str | Path) -> dict[str, Any]:
    """Epoch, global step and batches of the epoch a checkpoint was saved at (``batches_in_epoch``: 0
    at an epoch's end), read without loading its tensors, and
    whether it loads with ``torch.load(weights_only=True)`` (tensors and plain values only).

    Raises:
        DataError: the file is empty, truncated or not a checkpoint.
    """
    import pickle
    import zipfile

    import torch

    path = Path(ckpt_path)
    try:
        if path.stat().st_size == 0:
            raise EOFError("the file is empty")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        # intact but holds objects that weights_only refuses: readable, position unknown
        return {"epoch": None, "global_step": None, "weights_only": False}
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise DataError(
            f"checkpoint {path} is damaged and cannot be read ({str(err).splitlines()[0]}). It may have been cut "
            "short while being written; pass another checkpoint (--ckpt_path last, or a file from "
            f"{CHECKPOINTS}/), or train again."
        ) from err
    if not isinstance(checkpoint, dict):
        raise DataError(f"{path} is not a Lightning checkpoint (it holds a {type(checkpoint).__name__})")
    try:  # batches of the epoch trained; 0 for a checkpoint written at an epoch's end
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        batches = 0 if progress["is_last_batch"] else int(progress["current"]["completed"])
    except (KeyError, TypeError, AttributeError):
        batches = 0
    return {
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
        "batches_in_epoch": batches,
        "weights_only": True,
    }


def run_of_slurm_job(experiment_dir: Path, job: str) -> Path | None:
    """The newest run of an experiment that Slurm job ``job`` trained (``run_info.json``'s
    ``slurm_jobs``): where a requeued job continues."""
    for version in reversed(version_dirs(experiment_dir)):
        try:
            info = json.loads((version / RUN_INFO).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and job in (info.get("slurm_jobs") or []):
            return version
    return None


def checkpoint_of_alias(experiment_dir: Path, which: str) -> Path:
    """``best``/``last`` of the experiment's newest run, or, inside a Slurm job that trained a run of
    it, of that run: a job's ``test --ckpt_path best`` tests its own fit, whatever other jobs of the
    experiment have started since.

    Raises:
        ConfigError: no run of the experiment has that checkpoint.
    """
    job = slurm_job()
    run_dir = run_of_slurm_job(experiment_dir, job) if job is not None else None
    if run_dir is not None and (run_dir / CHECKPOINTS / f"{which}.ckpt").is_file():
        return run_dir / CHECKPOINTS / f"{which}.ckpt"
    return find_checkpoint(experiment_dir, which)


def requeued_checkpoint(experiment_dir: Path) -> tuple[Path | None, str | None]:
    """Where a Slurm job that was requeued (``SLURM_RESTART_COUNT`` > 0) resumes its fit: the
    ``last.ckpt`` of the run folder it trained before (``resume_checkpoint``), so that it continues in
    that ``version_N`` with its epoch and step counts; and the line that says so.

    Returns:
        (checkpoint, line): (None, None) outside Slurm or on a job's first start; checkpoint None with
        a line when the job was stopped before it finished an epoch.
    """
    job = slurm_job()
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    if job is None or not restarts.isdigit() or int(restarts) == 0:
        return None, None
    run_dir = run_of_slurm_job(experiment_dir, job)
    checkpoint = resume_checkpoint(run_dir) if run_dir is not None else None
    where = f"{run_dir} from {checkpoint.name}" if checkpoint else "from scratch: it saved no checkpoint"
    return checkpoint, f"imgcls: Slurm job {job} restart {restarts}: resuming {where}"


def fit_finished(run_dir: Path) -> bool:
    """Whether the run's ``fit`` ended normally (max_epochs, max_steps or early stopping), as its
    ``run_info.json`` records; False for a fit killed, interrupted or still running."""
    try:
        info = json.loads((Path(run_dir) / RUN_INFO).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("fit_finished") is True


EVALUATION_COMMANDS = ("validate", "test", "predict")


def evaluation_name(
    command: str, ckpt_path: str | Path | None, run_dir: Path, test_time_augmentation: str = "none"
) -> str:
    """The subfolder of the run folder that one evaluation logs into: ``test`` for the plain test of
    ``best.ckpt``, ``test-<checkpoint>`` for another checkpoint of the run, ``-tta-<mode>`` appended
    for test-time augmentation (``validate``, ``validate-last``...). Each gets its own TensorBoard run,
    so no evaluation lands on the fit's curves or on another evaluation's."""
    parts = [command]
    if (
        ckpt_path
        and Path(ckpt_path).stem != "best"
        and run_dir_of_checkpoint(ckpt_path) == Path(run_dir).resolve()
    ):
        parts.append(Path(ckpt_path).stem)
    if test_time_augmentation != "none":
        parts.append(f"tta-{test_time_augmentation}")
    return "-".join(parts)


def report_dir(run_dir: Path, evaluation: str) -> Path:
    """Where a test report goes: the run folder itself for the plain test of ``best.ckpt``, beside it
    (``test-last/``, ``test-tta-dihedral/``) for any other."""
    return Path(run_dir) if evaluation == "test" else Path(run_dir) / evaluation


def run_dir_of_log_dir(log_dir: str | Path) -> Path:
    """The run folder of a logger's folder: the parent of an evaluation's subfolder, else itself."""
    log_dir = Path(log_dir)
    if log_dir.name.split("-", 1)[0] in EVALUATION_COMMANDS and version_number(log_dir.parent) >= 0:
        return log_dir.parent
    return log_dir


def predict_filename(test_time_augmentation: str = "none", filename: str = PREDICT_CSV) -> str:
    """``predict.csv``, or ``predict-tta-<mode>.csv`` with test-time augmentation."""
    if test_time_augmentation == "none":
        return filename
    path = Path(filename)
    return path.with_stem(f"{path.stem}-tta-{test_time_augmentation}").name


def numbered_filename(filename: str, number: int) -> str:
    """The ``number``-th file of a kind, as ``config_<command>.yaml`` files are numbered: ``predict.csv``
    for the first, then ``predict_2.csv``, ``predict_3.csv``..."""
    if number == 1:
        return filename
    path = Path(filename)
    return path.with_stem(f"{path.stem}_{number}").name


def free_predict_filename(
    folder: Path, test_time_augmentation: str = "none", filename: str = PREDICT_CSV
) -> str:
    """The first name of ``predict_filename``'s numbering that ``folder`` does not hold yet: each
    ``predict`` of a run writes a CSV of its own, and none overwrites an earlier one."""
    name = predict_filename(test_time_augmentation, filename)
    number = 1
    while (Path(folder) / numbered_filename(name, number)).exists():
        number += 1
    return numbered_filename(name, number)


def predict_csvs(
    folder: Path, test_time_augmentation: str = "none", filename: str = PREDICT_CSV
) -> list[Path]:
    """The CSVs that ``predict`` wrote into ``folder`` with one test-time augmentation, in number
    order (``predict.csv``, ``predict_2.csv``...)."""
    name = predict_filename(test_time_augmentation, filename)
    path = Path(name)
    pattern = re.compile(rf"{re.escape(path.stem)}(?:_([2-9]|[1-9]\d+))?{re.escape(path.suffix)}")
    found = []
    for candidate in Path(folder).glob(f"{path.stem}*{path.suffix}"):
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_file():
            found.append((int(match.group(1) or 1), candidate))
    return [candidate for _, candidate in sorted(found)]


# leaf folders that name a layout, not a dataset (``fashion_mnist/raw``, torchvision's ``MNIST/raw``)
LAYOUT_FOLDERS = {"raw", "processed", "images", "data"}


def dataset_name(root: str | Path) -> str:
    """The dataset's name from its folder: the innermost folder that is not a layout folder."""
    path = Path(str(root))
    for folder in (path, *path.parents):
        if folder.name and folder.name.lower() not in LAYOUT_FOLDERS:
            return folder.name
    return path.name


# --- what in config.yaml tells runs apart ------------------------------------------------------------


class RunSetting(NamedTuple):
    """A setting of ``config.yaml`` that tells runs apart.

    Attributes:
        name: its name in TensorBoard's hparams tab.
        path: its dotted path in the config, through ``class_path``/``init_args`` sections; a path that
            ends at a section stands for all of its arguments.
        shown: shown in the hparams tab, which takes single values (a section shows as its class name).
        experiment: part of what makes an experiment: runs that differ in it never share a seed group.
            The seed is not; it tells apart the runs of one experiment.
        ignored: arguments of the section that change how it runs, not what a run trains.
        switch: the argument that turns the section on; while it is None the section counts as absent,
            as in runs from before the section existed.
    """

    name: str
    path: str
    shown: bool = True
    experiment: bool = True
    ignored: frozenset[str] = frozenset()
    switch: str | None = None


# data arguments that change how data is read, not which data: runs differing only in them group together
DATA_IO_ARGS = frozenset(
    {
        "seed",
        "num_workers",
        "pin_memory",
        "persistent_workers",
        "cache",
        "cache_dir",
        "cache_max_gb",
        "download",
        "predict_root",
    }
)
# the full resolved config stays in config.yaml; this is what a comparison of runs looks at
RUN_SETTINGS = (
    # the choices a person compares at a glance: the hparams tab's
    RunSetting("model", "model.backbone"),
    RunSetting("pretrained", "model.pretrained"),
    RunSetting("freeze_backbone", "model.freeze_backbone"),
    RunSetting("head_hidden", "model.head_hidden"),
    RunSetting("head_lr_multiplier", "model.head_lr_multiplier"),
    RunSetting("activation", "model.activation"),
    RunSetting("label_smoothing", "model.label_smoothing"),
    RunSetting("optimizer", "model.optimizer"),
    RunSetting("lr", "model.optimizer.lr"),
    RunSetting("weight_decay", "model.optimizer.weight_decay"),
    RunSetting("momentum", "model.optimizer.momentum"),
    RunSetting("lr_scheduler", "model.lr_scheduler"),
    RunSetting("data", "data", ignored=DATA_IO_ARGS),
    RunSetting("image_size", "data.image_size"),
    RunSetting("batch_size", "data.batch_size"),
    RunSetting("augment", "data.augment"),
    RunSetting("max_per_class", "data.max_per_class"),
    RunSetting("val_fraction", "data.val_fraction"),
    RunSetting("seed", "seed_everything", experiment=False),
    RunSetting("max_epochs", "trainer.max_epochs"),
    RunSetting("precision", "trainer.precision"),
    # the rest of what makes an experiment: every model argument, the trainer's that change what is
    # trained, and the training recipes that are on
    RunSetting("model_args", "model", shown=False),
    RunSetting("max_steps", "trainer.max_steps", shown=False),
    RunSetting("accumulate_grad_batches", "trainer.accumulate_grad_batches", shown=False),
    RunSetting("gradient_clip_val", "trainer.gradient_clip_val", shown=False),
    RunSetting("gradient_clip_algorithm", "trainer.gradient_clip_algorithm", shown=False),
    RunSetting("limit_train_batches", "trainer.limit_train_batches", shown=False),
    RunSetting("early_stopping", "early_stopping", shown=False),
    RunSetting("ema", "ema", shown=False, switch="decay"),
    RunSetting("progressive_resizing", "progressive_resizing", shown=False, switch="start_scale"),
)


def config_value(config: dict[str, Any], path: str) -> Any:
    """``config`` at a dotted path, stepping through ``class_path``/``init_args`` sections; None if absent."""
    node: Any = config
    for key in path.split("."):
        if isinstance(node, dict) and "class_path" in node and key not in node:
            node = node.get("init_args") or {}
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def experiment_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What makes a run's experiment, from its resolved config: the value of each ``experiment`` setting
    of ``RUN_SETTINGS``, by path (a switched-off section's is None; a section's ignored arguments are left out)."""
    settings = {}
    for setting in RUN_SETTINGS:
        if not setting.experiment:
            continue
        value = config_value(config, setting.path)
        if setting.switch is not None and not (
            isinstance(value, dict) and value.get(setting.switch) is not None
        ):
            value = None
        if setting.ignored and isinstance(value, dict):
            value = _without(value, setting.ignored)
        settings[setting.path] = value
    return settings


def _without(section: dict[str, Any], ignored: frozenset[str]) -> dict[str, Any]:
    """A config section without the ``ignored`` arguments: of a ``class_path`` section, its class and the
    rest of its ``init_args``."""
    if "class_path" in section:
        return {
            "class_path": section["class_path"],
            "init_args": _without(section.get("init_args") or {}, ignored),
        }
    return {k: v for k, v in section.items() if k not in ignored}
