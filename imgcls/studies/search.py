"""A sweep file with a ``search:`` block: an optuna study instead of a grid (``pip install imgcls[search]``).

::

    config: ../cifar10_scratch.yaml
    name: cifar10_search
    search:
      trials: 20                      # in all, over every restart and array task
      metric: val_acc                 # logged each epoch; the trial's value is its best epoch's
      direction: maximize
      storage: optuna.journal         # in the sweep's folder: .db is SQLite, anything else a journal
      sampler: {class_path: optuna.samplers.TPESampler, init_args: {seed: 0}}
      pruner: {class_path: optuna.pruners.MedianPruner, init_args: {n_warmup_steps: 2}}
      space:
        model.optimizer.init_args.lr: {low: 1.0e-4, high: 0.1, log: true}
        model.head_dropout: {low: 0.0, high: 0.5}
        model.optimizer: [../base/optim/sgd_momentum.yaml, ../base/optim/adam.yaml]

Each trial is a run like a grid's (``trial=N`` under the sweep's folder), fit with
``imgcls.callbacks.OptunaPruning``, which reports ``metric`` every epoch and stops a trial the pruner
gives up on. Several processes share one study through its storage: ``--parallel N`` here, or the
tasks of a Slurm job array, each running one trial. A journal file works on a shared filesystem
where SQLite's locking may not; SQLite suits one machine. A trial cut short (a kill, a requeue)
resumes from its ``last.ckpt`` when the sweep, or its array task, starts again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from imgcls import runs
from imgcls.errors import ConfigError, DataError
from imgcls.optuna_storage import import_optuna, live_trial, make_instance, make_pruner, open_storage
from imgcls.studies.execution import (
    Outcome,
    cores,
    execute,
    keep_alive_on_requeue_signal,
    run_folder,
    slurm_task_threads,
    test_accuracy,
)
from imgcls.studies.grid import GridRun, Sweep, check_sweep, make_run, piece_or_value, value_label
from imgcls.studies.report import write_tables

SEARCH_KEYS = ("trials", "metric", "direction", "storage", "sampler", "pruner", "space")
PRUNED_AT = "pruned_at_epoch"  # the trial's user attribute that OptunaPruning sets


class Search:
    """A sweep's optuna study: its space as distributions, and the runs of its trials."""

    def __init__(self, sweep: Sweep) -> None:
        optuna = import_optuna()
        spec = sweep.search or {}
        where = f"sweep file {sweep.path}: search"
        unknown = [key for key in spec if key not in SEARCH_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}; search has {', '.join(SEARCH_KEYS)}")
        self.sweep = sweep
        self.trials = spec.get("trials")
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"{where}.trials must be a number of trials, 1 or more, got {self.trials!r}")
        self.metric = str(spec.get("metric", "val_acc"))
        self.direction = spec.get("direction", "maximize")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"{where}.direction is maximize or minimize, not {self.direction!r}")
        space = spec.get("space")
        if not isinstance(space, dict) or not space:
            raise ConfigError(
                f"{where}.space must map keys to ranges {{low, high[, log, step]}} or lists of choices"
            )
        base = sweep.path.parent
        self.distributions: dict[str, Any] = {}
        self.bounds: dict[str, list[Any]] = {}  # the values the check parses
        for key, value in space.items():
            if isinstance(value, list) and value:
                choices = [piece_or_value(base, v) for v in value]
                # optuna keeps choices as plain values: pieces by their absolute path, the same
                # for every process that joins the study, wherever it starts
                choices = [c.resolve() if isinstance(c, Path) else c for c in choices]
                self.distributions[key] = optuna.distributions.CategoricalDistribution(
                    [str(c) if isinstance(c, Path) else c for c in choices]
                )
                self.bounds[key] = choices
            elif isinstance(value, dict) and {"low", "high"} <= set(value):
                extra = {k: v for k, v in value.items() if k not in ("low", "high")}
                low, high = value["low"], value["high"]
                kind = (
                    optuna.distributions.IntDistribution
                    if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high))
                    else optuna.distributions.FloatDistribution
                )
                try:
                    self.distributions[key] = kind(low, high, **extra)
                except (TypeError, ValueError) as err:
                    raise ConfigError(f"{where}.space {key!r}: {err}") from None
                self.bounds[key] = [low, high]
            else:
                raise ConfigError(
                    f"{where}.space {key!r} must be a range {{low: ..., high: ...[, log: true]}} or a list "
                    f"of choices, got {value!r}"
                )
        self.storage_spec = str(spec.get("storage", "optuna.journal"))
        storage_path = Path(self.storage_spec)
        if "://" not in self.storage_spec and not storage_path.is_absolute():
            self.storage_spec = str(sweep.folder / storage_path)
        self.sampler = make_instance(spec.get("sampler"), "sampler")
        self.pruner_spec = spec.get("pruner")
        self.pruner = make_pruner(self.pruner_spec)
        self._study: Any = None
        self._lock = threading.Lock()

    def check(self, parse: Callable[[list[str]], None]) -> None:
        """Parse the base config with each choice and each range's bounds (``check_sweep``)."""
        check_sweep(self.sweep, parse, self.bounds, kind="search.space")

    @property
    def study(self) -> Any:
        if self._study is None:
            self._study = import_optuna().create_study(
                storage=open_storage(self.storage_spec),
                study_name=self.sweep.name,
                sampler=self.sampler,
                pruner=self.pruner,
                direction=self.direction,
                load_if_exists=True,
            )
        return self._study

    def value(self, key: str, value: Any) -> Any:
        """A trial's parameter as a run's value: a config piece back to its path."""
        return Path(value) if isinstance(value, str) and Path(value) in self.bounds.get(key, []) else value

    def run_of(self, trial: Any) -> GridRun:
        """The run of a trial: its parameters as values, the pruning callback, the folder ``trial=N``."""
        values = {key: self.value(key, v) for key, v in trial.params.items()}
        callback = [
            "--trainer.callbacks+=imgcls.callbacks.OptunaPruning",
            f"--trainer.callbacks.storage={self.storage_spec}",
            f"--trainer.callbacks.study_name={self.sweep.name}",
            f"--trainer.callbacks.trial_number={trial.number}",
            f"--trainer.callbacks.metric={self.metric}",
            f"--trainer.callbacks.pruner={json.dumps(self.pruner_spec)}",
        ]
        return make_run(self.sweep, trial.number, values, callback, name=f"trial={trial.number}")

    def frozen(self, trial: Any) -> Any:
        """The trial as its storage has it now (another process may have set its attributes)."""
        return next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    def next_trial(self, job: str | None = None) -> Any | None:
        """The trial to run now: one this Slurm job started before a requeue, else a new one while
        the study has fewer than ``trials``; None when it is full."""
        optuna = import_optuna()
        with self._lock:
            study = self.study
            if job is not None:
                for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                    if trial.user_attrs.get("slurm_job") == job:
                        return live_trial(study, trial)
            if len(study.get_trials(deepcopy=False)) >= self.trials:
                return None
            trial = study.ask(self.distributions)
            trial.set_user_attr("run", f"trial={trial.number}")
            if job is not None:
                trial.set_user_attr("slurm_job", job)
            return trial

    def interrupted_trials(self) -> list[Any]:
        """Trials left running by a sweep that was stopped: this one continues them."""
        optuna = import_optuna()
        study = self.study
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return [live_trial(study, t) for t in running if "slurm_job" not in t.user_attrs]

    def finish(self, trial: Any, run: GridRun, outcome: Outcome) -> Outcome:
        """Tell the study how the trial ended: its best epoch's ``metric``, pruned or failed."""
        optuna = import_optuna()
        frozen = self.frozen(trial)
        if outcome is not Outcome.DONE:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            return Outcome.FAILED
        if PRUNED_AT in frozen.user_attrs:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
            return Outcome.PRUNED
        folder = run_folder(self.sweep, run)
        if folder is None:
            raise DataError(
                f"trial {run.name} left no run folder with a checkpoint under {self.sweep.folder}"
            )
        self.study.tell(trial, best_value(folder, self.metric, self.direction), skip_if_finished=True)
        return Outcome.DONE

    def execute(self, trial: Any, threads: int | None, log: bool = True) -> Outcome:
        """Run (or continue) a trial's fit and, unless it was pruned, its test; tell the study."""
        run = self.run_of(trial)

        def not_pruned(folder: Path) -> bool:
            return PRUNED_AT not in self.frozen(trial).user_attrs

        outcome = execute(
            self.sweep,
            run,
            self.trials,
            threads,
            self.sweep.logs / f"{run.name}.log" if log else None,
            test_if=not_pruned,
        )
        outcome = self.finish(trial, run, outcome)
        if outcome is Outcome.PRUNED:
            epoch = self.frozen(trial).user_attrs.get(PRUNED_AT)
            print(
                f"[{run.index + 1}/{self.trials}] {run.name}: pruned after epoch {epoch}, not tested",
                flush=True,
            )
        return outcome

    def is_complete(self) -> bool:
        """Whether the study holds all its trials and none is running."""
        running = import_optuna().trial.TrialState.RUNNING
        trials = self.study.get_trials(deepcopy=False)
        return len(trials) >= self.trials and all(t.state != running for t in trials)

    def best_line(self) -> str | None:
        """The best complete trial, as a line; None before one completes."""
        complete = import_optuna().trial.TrialState.COMPLETE
        if not self.study.get_trials(deepcopy=False, states=(complete,)):
            return None
        best = self.study.best_trial
        return f"imgcls: best trial {best.number}: {self.metric} {best.value:.4f} with {best.params}"


def best_value(folder: Path, metric: str, direction: str) -> float:
    """The best epoch's ``metric`` of a fit (its ``metrics.csv``)."""
    table = pd.read_csv(folder / runs.METRICS_CSV)
    if metric not in table or table[metric].dropna().empty:
        raise DataError(
            f"{folder / runs.METRICS_CSV} has no {metric}: set search.metric to a metric the fit logs "
            "each epoch (val_acc, val_loss...)"
        )
    values = table[metric].dropna()
    return float(values.max() if direction == "maximize" else values.min())


def run_search(search: Search, parallel: int = 1) -> dict[Outcome, int]:
    """Trials here until the study holds ``trials``: first those a stopped sweep left running, then
    new ones, ``parallel`` at a time. Returns how many ended done, pruned or failed."""
    threads = max(1, cores() // parallel) if parallel > 1 else None
    counts = dict.fromkeys(Outcome, 0)
    leftover = search.interrupted_trials()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                trial = leftover.pop(0) if leftover else None
            trial = trial or search.next_trial()
            if trial is None:
                return
            outcome = search.execute(trial, threads)
            with lock:
                counts[outcome] += 1

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [pool.submit(worker) for _ in range(parallel)]:
            future.result()
    return counts


def run_search_task(search: Search) -> Outcome:
    """One trial, as a task of a Slurm job array: the one this job ran before a requeue, or a new one."""
    keep_alive_on_requeue_signal()
    trial = search.next_trial(runs.slurm_job())
    if trial is None:
        print(f"imgcls: the study {search.sweep.name} already has its {search.trials} trials", flush=True)
        return Outcome.DONE
    return search.execute(trial, slurm_task_threads(), log=False)


def trials_table(search: Search) -> pd.DataFrame:
    """One row per trial: number, state, value, parameters, test accuracy and run folder."""
    rows = []
    for trial in search.study.get_trials(deepcopy=False):
        run_name = trial.user_attrs.get("run", f"trial={trial.number}")
        versions = runs.version_dirs(search.sweep.folder / run_name)
        row: dict[str, Any] = {
            "trial": trial.number,
            "state": trial.state.name.lower(),
            search.metric: trial.value,
        }
        row.update({key: value_label(search.value(key, v)) for key, v in trial.params.items()})
        row["pruned_at_epoch"] = trial.user_attrs.get(PRUNED_AT)
        row["test_acc"] = test_accuracy(versions[-1]) if versions else None
        rows.append(row)
    return pd.DataFrame(rows)


def write_search_report(search: Search) -> dict[str, Path]:
    """``comparison/`` of the tested trials and ``trials.md``/``trials.csv`` (every trial, best first).

    Raises:
        DataError: no trial was tested (every one pruned or failed).
    """
    folders = [
        v
        for t in search.study.get_trials(deepcopy=False)
        for v in runs.version_dirs(search.sweep.folder / f"trial={t.number}")[-1:]
    ]

    def table(comparison: pd.DataFrame) -> pd.DataFrame:
        trials = trials_table(search)
        return trials.sort_values(search.metric, ascending=search.direction == "minimize", na_position="last")

    note = f"{search.metric}: the trial's best epoch ({search.direction}); test_acc of its tested checkpoint."
    return write_tables(search.sweep, folders, "trials", table, search.trials, note)
