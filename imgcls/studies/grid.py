"""A sweep file and the grid of runs it describes: reading, naming, expanding, checking.

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
after what varies (``model=resnet18,optimizer=sgd,lr=0.01``). A file with ``search:`` instead of
``axes:`` is an optuna study (``imgcls.studies.search``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgcls import runs
from imgcls.errors import ConfigError
from imgcls.yamlfiles import read_settings

SWEEP_KEYS = ("config", "name", "runs_dir", "fixed", "axes", "search", "test")
PIECE_SUFFIXES = (".yaml", ".yml")


@dataclass
class GridRun:
    """One run of a study: its position, name, the value of each axis and its command line."""

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
    def logs(self) -> Path:
        """Where each run's output goes (``<run>.log``), and a job array's."""
        return self.folder / "logs"

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

    @property
    def base_args(self) -> list[str]:
        """``--config`` of each base config, then the ``fixed:`` settings: what every run starts with."""
        args = [arg for config in self.configs for arg in ("--config", str(config))]
        return args + [arg for key, value in self.fixed.items() for arg in (f"--{key}", command_value(value))]


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
        fixed={key: piece_or_value(base, value) for key, value in fixed.items()},
        axes={key: [piece_or_value(base, v) for v in values] for key, values in axes.items()},
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


def piece_or_value(base: Path, value: Any) -> Any:
    """A config piece (a string ending in .yaml, relative to the folder ``base`` of the sweep file)
    becomes its path; anything else stays a value."""
    return _resolve(base, value) if isinstance(value, str) and value.endswith(PIECE_SUFFIXES) else value


def command_value(value: Any) -> str:
    """A value as LightningCLI reads it on the command line."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers, booleans, null, lists and mappings: JSON is YAML


def value_label(value: Any) -> str:
    """A value as a run's name shows it: a piece by its file's stem, a class by its name."""
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
) -> GridRun:
    """One run: the base configs, ``fixed:``, the values in order, the extra arguments, its folder
    (named after the values unless ``name`` is given)."""
    labels = axis_labels(list(values))
    shown = {labels[k]: value_label(v) for k, v in values.items()}
    name = name or ",".join(f"{label}={text}" for label, text in shown.items())
    args = [*sweep.base_args]
    args += [arg for key, value in values.items() for arg in (f"--{key}", command_value(value))]
    args += [*(extra or []), *sweep.extra_args, "--runs_dir", str(sweep.folder), "--experiment", name]
    return GridRun(index=index, name=name, values=values, labels=shown, args=args)


def expand(sweep: Sweep) -> list[GridRun]:
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


def check_sweep(
    sweep: Sweep,
    parse: Callable[[list[str]], None],
    axes: dict[str, list[Any]] | None = None,
    kind: str = "axis",
) -> None:
    """Parse the base config with each axis value once, before any run starts, so that an unknown
    key, a missing piece or a value of the wrong type fails naming its axis.

    Args:
        sweep: the sweep.
        parse: parses a run's arguments as ``imgcls fit`` would, building nothing; raises ConfigError
            with one line that names the problem.
        axes: values to check instead of the sweep's axes (e.g. the bounds of a search space).
        kind: what ``axes`` are called in the messages.

    Raises:
        ConfigError: naming the axis (or ``fixed:`` setting) and the problem.
    """

    def check(args: list[str], what: str) -> None:
        try:
            parse(args)
        except ConfigError as err:
            raise ConfigError(f"sweep file {sweep.path}: {what}: {err}") from None

    check([*sweep.base_args, *sweep.extra_args], "the base config with `fixed:` and the extra arguments")
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
            check(
                [*sweep.base_args, f"--{key}", command_value(value)],
                f"{kind} {key!r} = {command_value(value)}",
            )
