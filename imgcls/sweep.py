"""``imgcls sweep``: a study's grid of runs from one YAML file, run here or as a Slurm job array.

A sweep file names a base config and the axes that vary; every combination is one run::

    config: ../cifar10_scratch.yaml          # base config(s), relative to this file
    name: cifar10_study                      # runs go to <runs_dir>/<name>/<run>/version_N
    fixed:                                   # the same for every run (optional)
      trainer.max_epochs: 10
    axes:                                    # a config piece (a YAML file) or a value per entry
      model: [../base/models/resnet18.yaml, ../base/models/mobilenet_v2_050.yaml]
      model.optimizer: [../base/optim/sgd.yaml, ../base/optim/adam.yaml]
      model.optimizer.init_args.lr: [0.01, 0.001]
      seed_everything: [0, 1, 2]
    test: best                               # the checkpoint each run tests; null for none

Each run is ``imgcls fit`` then ``imgcls test`` with the base config, then the axes' values in the
order written (``--model PIECE --model.optimizer PIECE --model.optimizer.init_args.lr 0.01``), named
after what varies (``model=resnet18,optimizer=sgd,lr=0.01``). A run whose test report exists is
skipped; one whose fit was cut short resumes from its newest checkpoint in the same ``version_N``; a
run whose fit finished is only tested. So a sweep restarted after a crash, a ``kill`` or a Slurm
requeue does only what is left. At the end the sweep writes ``imgcls compare``'s tables and figures
into ``comparison/``, and ``axes.md``: the axes against test accuracy, seeds averaged with a 95% CI.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgcls import runs
from imgcls.errors import ConfigError, ImgclsError
from imgcls.yamlfiles import read_settings

SWEEP_KEYS = ("config", "name", "runs_dir", "fixed", "axes", "search", "test")
PIECE_SUFFIXES = (".yaml", ".yml")
ARRAY_TEMPLATE = Path(__file__).resolve().parent.parent / "scripts" / "slurm" / "sweep_array.sbatch"


@dataclass
class Run:
    """One point of the grid: its position, name, the value of each axis and its command line."""

    index: int
    name: str
    values: dict[str, Any]
    labels: dict[str, str]
    args: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    """A parsed sweep file: base configs, fixed settings, axes, and where its runs go."""

    path: Path
    name: str
    runs_dir: Path
    configs: list[Path]
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]
    test: str | None = "best"
    extra_args: list[str] = field(default_factory=list)
    search: dict[str, Any] | None = None
    runs_dir_given: bool = False  # by `-- --runs_dir`, which the job array's tasks must get too

    @property
    def folder(self) -> Path:
        """``<runs_dir>/<name>``: the runs, their logs and the comparison."""
        return self.runs_dir / self.name

    @property
    def task_args(self) -> list[str]:
        """The arguments after ``--`` that a job array's task needs to rebuild this sweep."""
        return [
            *self.extra_args,
            *(["--runs_dir", str(self.runs_dir.resolve())] if self.runs_dir_given else []),
        ]

    @property
    def seed_axes(self) -> list[str]:
        """Axes whose runs are repeats of one setting: averaged in ``axes.md``."""
        return [key for key in self.axes if key == "seed_everything" or key.rsplit(".", 1)[-1] == "seed"]


# --- reading a sweep file ---------------------------------------------------------------------


def load_sweep(path: str | Path, extra_args: list[str] | None = None) -> Sweep:
    """Read and check a sweep file's structure (not yet its keys: see ``check_sweep``).

    Raises:
        ConfigError: the file is missing, not YAML, or its fields are of the wrong kind.
    """
    path = Path(path)
    example = "one with `config:` and `axes:`, such as configs/sweeps/cifar10_study.yaml"
    spec = read_settings(path, f"sweep file {path}", example)
    unknown = [key for key in spec if key not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(
            f"sweep file {path}: unknown field {unknown[0]!r}; a sweep file has {', '.join(SWEEP_KEYS)}"
        )
    configs = spec.get("config")
    configs = [configs] if isinstance(configs, str) else configs
    if not configs or not all(isinstance(c, str) for c in configs):
        raise ConfigError(f"sweep file {path}: `config:` must name the base config file (or a list of them)")
    axes = spec.get("axes")
    search = spec.get("search")
    if search is not None:
        if axes:
            raise ConfigError(f"sweep file {path}: give `axes:` (a grid) or `search:` (optuna), not both")
        axes = {}
    elif not isinstance(axes, dict) or not axes:
        raise ConfigError(
            f"sweep file {path}: `axes:` must map keys to lists of values, e.g. "
            "`model.optimizer.init_args.lr: [0.1, 0.01]`"
        )
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"sweep file {path}: axis {key!r} must be a non-empty list of values (got {values!r})"
            )
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(
            f"sweep file {path}: `fixed:` must map keys to values, e.g. `trainer.max_epochs: 10`"
        )
    test = spec.get("test", "best")
    if test not in (None, *runs.CHECKPOINT_ALIASES):
        raise ConfigError(f"sweep file {path}: `test:` is best, last or null, not {test!r}")
    base = path.parent
    config_paths = [_resolve(base, c) for c in configs]
    for config in config_paths:
        if not config.is_file():
            raise ConfigError(f"sweep file {path}: base config {config} does not exist")
    runs_dir, extra_args = _take_runs_dir(list(extra_args or []))
    return Sweep(
        path=path,
        name=str(spec.get("name") or path.stem),
        runs_dir=Path(runs_dir or spec.get("runs_dir") or "runs"),
        configs=config_paths,
        fixed={key: _piece_or_value(base, value) for key, value in fixed.items()},
        axes={key: [_piece_or_value(base, v) for v in values] for key, values in axes.items()},
        test=test,
        extra_args=extra_args,
        search=search,
        runs_dir_given=runs_dir is not None,
    )


def _take_runs_dir(extra_args: list[str]) -> tuple[str | None, list[str]]:
    """The ``--runs_dir`` among the arguments for every run (it moves the whole sweep: the runs, their
    logs and the comparison) and the other arguments; ``--experiment`` is refused, since the sweep
    names each run after its values."""
    runs_dir, rest = None, []
    arguments = iter(extra_args)
    for arg in arguments:
        key, _, value = arg.partition("=")
        if key == "--experiment":
            raise ConfigError(
                "`imgcls sweep ... -- --experiment NAME`: the sweep names each run after its values; drop "
                "--experiment and set `name:` in the sweep file for the sweep's folder"
            )
        if key != "--runs_dir":
            rest.append(arg)
            continue
        runs_dir = value or next(arguments, None)
        if not runs_dir:
            raise ConfigError("`imgcls sweep ... -- --runs_dir` needs a folder: -- --runs_dir /scratch/runs")
    return runs_dir, rest


def _resolve(base: Path, name: str) -> Path:
    """A file named in a sweep file: relative to that file, shown relative to here when inside it."""
    path = (base / name).resolve()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _piece_or_value(base: Path, value: Any) -> Any:
    """A config piece (a string ending in .yaml) becomes its path; anything else stays a value."""
    return _resolve(base, value) if isinstance(value, str) and value.endswith(PIECE_SUFFIXES) else value


def _argument(value: Any) -> str:
    """A value as LightningCLI reads it on the command line."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers, booleans, null, lists and mappings: JSON is YAML


def _value_label(value: Any) -> str:
    if isinstance(value, Path):
        text = value.stem
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, dict) and "class_path" in value:
        text = str(value["class_path"]).rsplit(".", 1)[-1]
    else:
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "x"


def axis_labels(keys: list[str]) -> dict[str, str]:
    """Short names of the axes for run names: the last part of each key (``lr`` of
    ``model.optimizer.init_args.lr``, ``seed`` of ``seed_everything``), longer where two would clash."""

    def label(key: str, parts: int) -> str:
        words = [w for w in key.split(".") if w != "init_args"]
        text = ".".join(words[-parts:])
        return "seed" if text == "seed_everything" else text

    labels = {key: label(key, 1) for key in keys}
    for parts in range(2, 10):
        clashes = {k for k in keys if list(labels.values()).count(labels[k]) > 1}
        if not clashes:
            break
        labels.update({k: label(k, parts) for k in clashes})
    return labels


def make_run(
    sweep: Sweep, index: int, values: dict[str, Any], extra: list[str] | None = None, name: str | None = None
) -> Run:
    """One run: the base configs, ``fixed:``, the values in order, the extra arguments, its folder
    (named after the values unless ``name`` is given)."""
    labels = axis_labels(list(values))
    shown = {labels[k]: _value_label(v) for k, v in values.items()}
    name = name or ",".join(f"{label}={text}" for label, text in shown.items())
    args = [arg for config in sweep.configs for arg in ("--config", str(config))]
    args += [arg for key, value in sweep.fixed.items() for arg in (f"--{key}", _argument(value))]
    args += [arg for key, value in values.items() for arg in (f"--{key}", _argument(value))]
    args += [*(extra or []), *sweep.extra_args, "--runs_dir", str(sweep.folder), "--experiment", name]
    return Run(index=index, name=name, values=values, labels=shown, args=args)


def expand(sweep: Sweep) -> list[Run]:
    """Every combination of the axes, in the order of the file (the last axis varies fastest)."""
    keys = list(sweep.axes)
    grid = [
        make_run(sweep, index, dict(zip(keys, combination, strict=True)))
        for index, combination in enumerate(itertools.product(*sweep.axes.values()))
    ]
    names = [run.name for run in grid]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise ConfigError(
            f"sweep file {sweep.path}: two runs would share the folder {twins[0]!r}: two values of an axis "
            "have the same name; give the pieces different file names"
        )
    return grid


def check_sweep(sweep: Sweep, axes: dict[str, list[Any]] | None = None, kind: str = "axis") -> None:
    """Parse the base config with each axis value once, before any run starts, so that an unknown
    key, a missing piece or a value of the wrong type fails naming its axis (``axes``: instead of the
    sweep's, e.g. the bounds of a search space).

    Raises:
        ConfigError: naming the axis (or ``fixed:`` setting) and the problem.
    """
    from jsonargparse import ArgumentError

    from imgcls.cli import ImgclsCLI
    from imgcls.models.backbones import check_backbone_name

    class ParseOnly(ImgclsCLI):
        """Parses and stops: builds no model, reads no data, seeds nothing."""

        def _set_seed(self) -> None:
            pass

        def _add_instantiators(self) -> None:
            pass

        def instantiate_classes(self) -> None:
            backbone = self.config.get("model", {}).get("backbone")
            if backbone:
                check_backbone_name(backbone)

    common = [arg for config in sweep.configs for arg in ("--config", str(config))]
    fixed = [arg for key, value in sweep.fixed.items() for arg in (f"--{key}", _argument(value))]

    def parse(args: list[str], what: str) -> None:
        try:
            with warnings.catch_warnings():  # that args= is meant for use from Python: it is
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                ParseOnly(args=args, run=False, parser_kwargs={"parser_mode": "yaml", "exit_on_error": False})
        except (ArgumentError, ImgclsError) as err:
            message = " ".join(str(err).split())
            raise ConfigError(f"sweep file {sweep.path}: {what}: {message}") from None

    parse(common + fixed + sweep.extra_args, "the base config with `fixed:` and the extra arguments")
    for key, values in (sweep.axes if axes is None else axes).items():
        if key.lstrip("-") != key or "=" in key:
            raise ConfigError(
                f"sweep file {sweep.path}: {kind} {key!r}: write the key without dashes, as in a config"
            )
        for value in values:
            if isinstance(value, Path) and not value.is_file():
                raise ConfigError(
                    f"sweep file {sweep.path}: {kind} {key!r}: config piece {value} does not exist"
                )
            parse(common + fixed + [f"--{key}", _argument(value)], f"{kind} {key!r} = {_argument(value)}")


# --- the state of a run -----------------------------------------------------------------------


def run_folder(sweep: Sweep, run: Run) -> Path | None:
    """The ``version_N`` of a run that the sweep continues: the newest that holds a checkpoint."""
    for version in reversed(runs.version_dirs(sweep.folder / run.name)):
        if (
            runs.resume_checkpoint(version) is not None
            or (version / runs.CHECKPOINTS / "best.ckpt").is_file()
        ):
            return version
    return None


def run_state(sweep: Sweep, run: Run) -> tuple[str, Path | None]:
    """What is left of a run: ``done`` (tested), ``test`` (fit finished), ``resume`` (a fit cut short,
    with a checkpoint) or ``fit`` (nothing to continue from); with its run folder."""
    folder = run_folder(sweep, run)
    if folder is None:
        return "fit", None
    if runs.fit_finished(folder):
        if sweep.test is None or (folder / runs.TEST_METRICS).is_file():
            return "done", folder
        return "test", folder
    return "resume", folder


# --- running ----------------------------------------------------------------------------------


def cores() -> int:
    """CPU cores this process may use (its affinity, so a Slurm allocation's cores)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _command(command: str, run: Run, threads: int | None, ckpt_path: Path | None = None) -> list[str]:
    args = [sys.executable, "-m", "imgcls.cli", command, *run.args]
    if threads:
        args += ["--threads", str(threads)]
    if ckpt_path is not None:
        args += ["--ckpt_path", str(ckpt_path)]
    return args


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


_children: set[subprocess.Popen] = set()


def _die_with_parent() -> None:
    """In a run's process: end when the sweep does, even killed outright (Linux's parent-death signal)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_runs_on_sigterm() -> None:
    """A sweep stopped with SIGTERM (``kill``, a scheduler) stops its runs first: none is left training."""

    def stop(signum: int, frame: Any) -> None:
        for child in list(_children):
            child.terminate()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def _call(args: list[str], env: dict[str, str], output: Any) -> int:
    child = subprocess.Popen(
        args,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    _children.add(child)
    try:
        return child.wait()
    finally:
        _children.discard(child)


def execute(
    sweep: Sweep,
    run: Run,
    total: int,
    threads: int | None = None,
    log_file: Path | None = None,
    test_if: Any = None,
) -> str:
    """Do what is left of one run (fit or resume, then test), its output appended to ``log_file``
    (or inherited when None); ``test_if(run_folder)`` False skips the test (a pruned trial).
    Returns the run's final state: ``done`` or ``failed``."""
    state, folder = run_state(sweep, run)
    tag = f"[{run.index + 1}/{total}] {run.name}"
    if state == "done":
        print(f"{tag}: already done ({folder})", flush=True)
        return "done"
    started = time.perf_counter()
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    output = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        output = log_file.open("a")
    try:
        steps = {"fit": ["fit", "test"], "resume": ["fit", "test"], "test": ["test"]}[state]
        if sweep.test is None:
            steps = [s for s in steps if s != "test"]
        where = f" (log {log_file})" if log_file is not None else ""
        what = {"fit": "fit", "resume": f"resume {folder}", "test": f"test {folder}"}[state]
        print(f"{tag}: {what}{where}", flush=True)
        for step in steps:
            if step == "fit":
                ckpt = runs.resume_checkpoint(folder) if state == "resume" and folder is not None else None
                args = _command("fit", run, threads, ckpt)
            else:
                folder = run_folder(sweep, run)
                if test_if is not None and folder is not None and not test_if(folder):
                    break
                checkpoint = folder / runs.CHECKPOINTS / f"{sweep.test}.ckpt" if folder is not None else None
                if checkpoint is None or not checkpoint.is_file():
                    print(f"{tag}: failed: its fit left no {sweep.test}.ckpt to test", flush=True)
                    return "failed"
                args = _command("test", run, threads, checkpoint)
            if output is not None:
                output.write(f"$ {shlex.join(args)}\n")
                output.flush()
            code = _call(args, env, output)
            if code != 0:
                print(f"{tag}: failed: `imgcls {step}` exited with {code}{where}", flush=True)
                return "failed"
    finally:
        if output is not None:
            output.close()
    folder = run_folder(sweep, run)
    score = _test_accuracy(folder)
    result = f", test_acc {score:.4f}" if score is not None else ""
    print(f"{tag}: done in {_duration(time.perf_counter() - started)}{result} ({folder})", flush=True)
    return "done"


def _test_accuracy(folder: Path | None) -> float | None:
    try:
        value = json.loads((folder / runs.TEST_METRICS).read_text()).get("test_acc") if folder else None
    except (OSError, ValueError):
        return None
    return float(value) if isinstance(value, int | float) else None


def run_here(sweep: Sweep, grid: list[Run], parallel: int = 1) -> dict[str, str]:
    """Run the grid on this machine, ``parallel`` runs at a time, each with its share of the cores.

    Returns:
        Run name -> ``done`` or ``failed``.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be 1 or more, got {parallel}")
    threads = max(1, cores() // parallel) if parallel > 1 else None
    logs = sweep.folder / "logs"

    def one(run: Run) -> tuple[str, str]:
        return run.name, execute(sweep, run, len(grid), threads, logs / f"{run.name}.log")

    if parallel == 1:
        return dict(one(run) for run in grid)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return dict(pool.map(one, grid))


def run_task(sweep: Sweep, grid: list[Run], index: int) -> str:
    """One run of the grid, as a task of a Slurm job array does (``--task $SLURM_ARRAY_TASK_ID``).

    Lightning's requeue signal (SIGUSR1) reaches this process too, as Slurm signals every process of
    the job step: a handler that does nothing keeps it alive for the fit that handles the signal.
    """
    if not 0 <= index < len(grid):
        raise ConfigError(f"--task {index}: the sweep has runs 0 to {len(grid) - 1}")
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    threads = int(os.environ["SLURM_CPUS_PER_TASK"]) if os.environ.get("SLURM_CPUS_PER_TASK") else None
    return execute(sweep, grid[index], len(grid), threads)


def submit(sweep: Sweep, count: int, parallel: int | None, sbatch_args: list[str]) -> str:
    """Submit ``count`` runs (the grid, or a search's trials) as one Slurm job array
    (``scripts/slurm/sweep_array.sbatch``), at most ``parallel`` tasks at a time; returns the job id."""
    sbatch = os.environ.get("SBATCH", "sbatch")
    if subprocess.call(["which", sbatch], stdout=subprocess.DEVNULL) != 0:
        local = f"imgcls sweep --config {sweep.path}" + (f" --parallel {parallel}" if parallel else "")
        raise ConfigError(
            f"sbatch not found: this machine has no Slurm client. Run the sweep on this machine instead: `{local}`"
        )
    if not ARRAY_TEMPLATE.is_file():
        raise ConfigError(
            f"the job array template {ARRAY_TEMPLATE} is missing: --slurm needs imgcls installed from its "
            "repository (pip install -e .), which holds scripts/slurm/"
        )
    logs = (sweep.folder / "logs").resolve()
    logs.mkdir(parents=True, exist_ok=True)
    array = f"0-{count - 1}" + (f"%{parallel}" if parallel else "")
    command = [
        sbatch,
        "--parsable",
        f"--array={array}",
        f"--job-name=imgcls-{sweep.name}",
        f"--output={logs}/slurm-%A_%a.out",
        *sbatch_args,
        str(ARRAY_TEMPLATE),
        str(sweep.path),
        *sweep.task_args,
    ]
    print("$ " + shlex.join(command), flush=True)
    # the array's tasks run this interpreter (the template's default is .venv/bin/python)
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise ConfigError(
            f"sbatch refused the sweep's job array: {result.stderr.strip() or result.stdout.strip()}"
        )
    job = result.stdout.strip().split(";")[0]
    dashes = ["--", *sweep.task_args] if sweep.task_args else []
    print(f"imgcls: submitted job array {job} ({count} runs); logs in {logs}", flush=True)
    print(
        f"imgcls: when it ends, `{shlex.join(['imgcls', 'sweep', '--config', str(sweep.path), '--report', *dashes])}` "
        "writes the comparison",
        flush=True,
    )
    return job


# --- the report -------------------------------------------------------------------------------


def axes_table(sweep: Sweep, grid: list[Run], comparison: Any) -> Any:
    """The axes against the test accuracy: one row per setting of the axes other than seeds, with
    the runs' mean test accuracy and loss, the 95% CI over seeds, and their tested epochs."""
    import pandas as pd

    from imgcls.analysis.compare import mean_std_ci95

    labels = axis_labels(list(sweep.axes))
    seeds = set(sweep.seed_axes)
    by_path = {str(Path(p).resolve()): row for p, row in comparison.set_index("path").iterrows()}
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for run in grid:
        folder = run_folder(sweep, run)
        row = by_path.get(str(folder.resolve())) if folder is not None else None
        setting = tuple(run.labels[labels[k]] for k in sweep.axes if k not in seeds)
        entry = rows.setdefault(setting, {"runs": [], "planned": 0})
        entry["planned"] += 1
        if row is not None:
            entry["runs"].append(row)
    table = []
    for setting, entry in rows.items():
        found = entry["runs"]
        record: dict[str, Any] = dict(
            zip([labels[k] for k in sweep.axes if k not in seeds], setting, strict=True)
        )
        record["runs"] = f"{len(found)}/{entry['planned']}"
        for metric in ("test_acc", "test_loss", "val_acc"):
            mean, _, ci = mean_std_ci95([float(r[metric]) for r in found])
            record[metric] = mean
            if seeds:
                record[f"{metric}_ci95"] = ci
        record["tested_epochs"] = ", ".join(
            "?" if pd.isna(r["tested_epoch"]) else str(int(r["tested_epoch"])) for r in found
        )
        record["seconds_per_epoch"] = mean_std_ci95([float(r["seconds_per_epoch"]) for r in found])[0]
        table.append(record)
    return pd.DataFrame(table)


def write_report(sweep: Sweep, grid: list[Run]) -> dict[str, Path]:
    """``comparison/`` (``imgcls compare`` of the tested runs) and ``axes.md``/``axes.csv``.

    Raises:
        DataError: no run of the sweep has test results yet.
    """
    folders = [f for f in (run_folder(sweep, run) for run in grid) if f is not None]
    note = ""
    if sweep.seed_axes:
        note = f"Means over {', '.join(sweep.seed_axes)}; ci95 is the half-width of the 95% interval."
    return write_tables(
        sweep, folders, "axes", lambda comparison: axes_table(sweep, grid, comparison), len(grid), note
    )


def write_tables(
    sweep: Sweep, folders: list[Path], name: str, make_table: Any, planned: int, note: str = ""
) -> dict[str, Path]:
    """``comparison/`` of the tested run folders, and the table ``make_table(comparison)`` as
    ``<name>.md`` and ``<name>.csv`` in the sweep's folder."""
    import pandas as pd
    from filelock import FileLock

    from imgcls.analysis.compare import to_markdown, write_comparison
    from imgcls.errors import DataError

    tested = [f for f in folders if (f / runs.TEST_METRICS).is_file()]
    if not tested:
        raise DataError(f"no run of sweep {sweep.name} has test results yet under {sweep.folder}")
    sweep.folder.mkdir(parents=True, exist_ok=True)
    # array tasks that end together would write the same files at once
    with FileLock(sweep.folder / ".report.lock"):
        written = write_comparison(tested, sweep.folder / "comparison", skip_untested=True)
        table = make_table(pd.read_csv(written["comparison_csv"]))
        table.to_csv(sweep.folder / f"{name}.csv", index=False)
        lines = [
            f"# Sweep {sweep.name}: {len(tested)} of {planned} runs tested",
            "",
            to_markdown(table, note=False),
        ]
        (sweep.folder / f"{name}.md").write_text("\n".join([*lines, "", note] if note else lines) + "\n")
    written.update({f"{name}_csv": sweep.folder / f"{name}.csv", f"{name}_md": sweep.folder / f"{name}.md"})
    return written


def describe(sweep: Sweep, grid: list[Run]) -> str:
    """The plan: each run, its state and its axes' values."""
    lines = [f"sweep {sweep.name}: {len(grid)} runs into {sweep.folder}"]
    for run in grid:
        state, _ = run_state(sweep, run)
        lines.append(f"  {run.index:>3}  {state:<6}  {run.name}")
    return "\n".join(lines)


def sweep_command(argv: list[str]) -> int:
    """``imgcls sweep --config FILE [--parallel N | --slurm | --task I | --report | --dry-run] [-- ARGS]``:
    returns the exit status (1 when a run failed)."""
    from imgcls.analysis.commands import _Parser

    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = _Parser(
        "imgcls sweep",
        "Run a study's grid of runs from a sweep file (see configs/sweeps/): each combination of its axes is "
        "`imgcls fit` then `imgcls test` in <runs_dir>/<name>/<run>/version_N. Finished runs are skipped, "
        "interrupted ones resumed. Arguments after `--` go to every run (e.g. -- --trainer.max_epochs 2).",
    )
    parser.add_argument("--config", type=str, required=True, help="The sweep file.")
    parser.add_argument(
        "--parallel",
        type=int | None,
        default=None,
        help="Runs at a time (here: each gets its share of the cores).",
    )
    parser.add_argument("--slurm", action="store_true", help="Submit the grid as one Slurm job array.")
    parser.add_argument(
        "--sbatch",
        type=list[str],
        default=[],
        help='Extra sbatch options for --slurm, e.g. ["--time=02:00:00"].',
    )
    parser.add_argument("--task", type=int | None, default=None, help="Run only run I (a job array's task).")
    parser.add_argument("--report", action="store_true", help="Only write the comparison of the tested runs.")
    parser.add_argument(
        "--dry-run", action="store_true", help="Print the runs and their commands; run nothing."
    )
    parser.add_argument(
        "--no-check", action="store_true", help="Skip parsing every axis value before the runs."
    )
    args = parser.parse(argv)
    sweep = load_sweep(args.config, extra)
    if sweep.search is not None:
        from imgcls.search import search_command

        return search_command(sweep, args)
    grid = expand(sweep)
    if args.report:
        report(sweep, grid)
        return 0
    if args.task is None and not args.no_check:
        check_sweep(sweep)
    if args.dry_run:
        print(describe(sweep, grid))
        for run in grid:
            print("imgcls fit " + shlex.join(run.args))
        return 0
    if args.slurm:
        submit(sweep, len(grid), args.parallel, args.sbatch)
        return 0
    if args.task is not None:
        state = run_task(sweep, grid, args.task)
        if state == "done" and all(run_state(sweep, r)[0] == "done" for r in grid):
            report(sweep, grid)  # the last task to finish writes the comparison
        return 0 if state == "done" else 1
    print(describe(sweep, grid), flush=True)
    stop_runs_on_sigterm()
    started = time.perf_counter()
    states = run_here(sweep, grid, args.parallel or 1)
    failed = [name for name, state in states.items() if state != "done"]
    print(
        f"imgcls: sweep {sweep.name}: {len(states) - len(failed)} of {len(states)} runs done in "
        f"{_duration(time.perf_counter() - started)}",
        flush=True,
    )
    if len(failed) < len(states):
        report(sweep, grid)
    if failed:
        logs = sweep.folder / "logs"
        print(f"imgcls: {len(failed)} runs failed (logs in {logs}): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def report(sweep: Sweep, grid: list[Run]) -> None:
    """Write and print the sweep's axes table."""
    written = write_report(sweep, grid)
    print(written["axes_md"].read_text(), flush=True)
    print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr, flush=True)
