"""``imgcls sweep``: a study's grid of runs (or optuna trials) from one sweep file, run here, N at a
time, or as a Slurm job array; then its comparison. The sweep file's format: ``imgcls.studies.grid``
(``axes:``) and ``imgcls.studies.search`` (``search:``).

imgcls sweep --config configs/sweeps/cifar10_study.yaml --parallel 2 -- --trainer.max_epochs 2
"""

from __future__ import annotations

import shlex
import sys
import time
import warnings
from typing import Any

from jsonargparse import ArgumentError, Namespace

from imgcls.commands.arguments import CommandParser
from imgcls.commands.command import STUDIES, Command
from imgcls.commands.lightning import ImgclsCLI
from imgcls.errors import ConfigError, DataError, ImgclsError
from imgcls.models.backbones import check_backbone_name
from imgcls.studies.execution import (
    Outcome,
    State,
    describe,
    format_duration,
    run_here,
    run_state,
    run_task,
    stop_runs_on_sigterm,
)
from imgcls.studies.grid import GridRun, Sweep, check_sweep, expand, load_sweep
from imgcls.studies.report import print_report, write_report
from imgcls.studies.search import Search, run_search, run_search_task, write_search_report
from imgcls.studies.slurm import submit


class _Parsed(Exception):
    """Raised by ``_ParseOnly`` once the arguments are parsed, carrying the config."""


class _ParseOnly(ImgclsCLI):
    """Parses a run's arguments and stops there: builds no model, reads no data, seeds nothing."""

    def parse_arguments(self, parser: Any, args: Any) -> None:
        super().parse_arguments(parser, args)
        raise _Parsed(self.config)


def parse_run(args: list[str]) -> None:
    """Parse a run's ``imgcls fit`` arguments as the run will, without running it, and check the
    backbone's name, the one value a parse cannot.

    Raises:
        ConfigError: one line naming the problem.
    """
    try:
        with warnings.catch_warnings():  # that args= is meant for use from Python: it is
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            _ParseOnly(args=args, run=False, parser_kwargs={"parser_mode": "yaml", "exit_on_error": False})
    except _Parsed as parsed:
        backbone = parsed.args[0].get("model", {}).get("backbone")
        if backbone:
            check_backbone_name(backbone)
    except (ArgumentError, ImgclsError) as err:
        raise ConfigError(" ".join(str(err).split())) from None


def sweep_parser() -> CommandParser:
    """The parser of ``imgcls sweep`` (the arguments before ``--``)."""
    parser = CommandParser(
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
    return parser


def sweep_command(argv: list[str]) -> int:
    """``imgcls sweep --config FILE [--parallel N | --slurm | --task I | --report | --dry-run] [-- ARGS]``:
    returns the exit status (1 when a run failed)."""
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = sweep_parser().parse(argv)
    sweep = load_sweep(args.config, extra)
    if sweep.search is not None:
        return _search(sweep, args)
    grid = expand(sweep)
    if args.report:
        _report(sweep, grid)
        return 0
    if args.task is None and not args.no_check:
        check_sweep(sweep, parse_run)
    if args.dry_run:
        print(describe(sweep, grid))
        for run in grid:
            print("imgcls fit " + shlex.join(run.args))
        return 0
    if args.slurm:
        submit(sweep, len(grid), args.parallel, args.sbatch)
        return 0
    if args.task is not None:
        outcome = run_task(sweep, grid, args.task)
        if outcome is Outcome.DONE and all(run_state(sweep, r)[0] is State.DONE for r in grid):
            _report(sweep, grid)  # the last task to finish writes the comparison
        return 0 if outcome is Outcome.DONE else 1
    print(describe(sweep, grid), flush=True)
    stop_runs_on_sigterm()
    started = time.perf_counter()
    outcomes = run_here(sweep, grid, args.parallel or 1)
    failed = [name for name, outcome in outcomes.items() if outcome is not Outcome.DONE]
    print(
        f"imgcls: sweep {sweep.name}: {len(outcomes) - len(failed)} of {len(outcomes)} runs done in "
        f"{format_duration(time.perf_counter() - started)}",
        flush=True,
    )
    if len(failed) < len(outcomes):
        _report(sweep, grid)
    if failed:
        print(
            f"imgcls: {len(failed)} runs failed (logs in {sweep.logs}): {', '.join(failed)}", file=sys.stderr
        )
        return 1
    return 0


def _report(sweep: Sweep, grid: list[GridRun]) -> None:
    print_report(write_report(sweep, grid), "axes_md")


def _search(sweep: Sweep, args: Namespace) -> int:
    """``imgcls sweep`` of a sweep file with ``search:``, with the same options."""
    search = Search(sweep)

    def report() -> None:
        try:
            print_report(write_search_report(search), "trials_md")
        except DataError as err:  # every trial pruned or failed: nothing was tested
            print(f"imgcls: {err}", flush=True)

    if args.report:
        report()
        return 0
    if args.task is None and not args.no_check:
        search.check(parse_run)
    if args.dry_run:
        print(
            f"search {sweep.name}: {search.trials} trials of {search.metric} ({search.direction}) into "
            f"{sweep.folder}, study in {search.storage_spec}"
        )
        for key, distribution in search.distributions.items():
            print(f"  {key}: {distribution}")
        return 0
    if args.slurm:
        submit(sweep, search.trials, args.parallel, args.sbatch)
        return 0
    if args.task is not None:
        outcome = run_search_task(search)
        if search.is_complete():
            report()  # the task that ends the study writes the comparison
        return 0 if outcome in (Outcome.DONE, Outcome.PRUNED) else 1
    stop_runs_on_sigterm()
    started = time.perf_counter()
    counts = run_search(search, args.parallel or 1)
    print(
        f"imgcls: search {sweep.name}: {counts[Outcome.DONE]} trials done, {counts[Outcome.PRUNED]} pruned, "
        f"{counts[Outcome.FAILED]} failed in {format_duration(time.perf_counter() - started)}",
        flush=True,
    )
    best = search.best_line()
    if best is not None:
        print(best, flush=True)
    report()
    return 1 if counts[Outcome.FAILED] else 0


def _run(argv: list[str]) -> None:
    sys.exit(sweep_command(argv))


COMMANDS = (
    Command(
        "sweep",
        STUDIES,
        "a study's grid of runs from a sweep file: here, N at a time, or as a Slurm job array",
        _run,
    ),
)
