"""A study's report: ``imgcls compare`` of its tested runs, and its own table (axes or trials)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from imgcls import runs
from imgcls.analysis.compare import to_markdown, write_comparison
from imgcls.errors import DataError
from imgcls.stats import mean_std_ci95
from imgcls.studies.execution import run_folder
from imgcls.studies.grid import GridRun, Sweep, axis_labels


def axes_table(sweep: Sweep, grid: list[GridRun], comparison: pd.DataFrame) -> pd.DataFrame:
    """The axes against the test accuracy: one row per setting of the axes other than seeds, with
    the runs' mean test accuracy and loss, the 95% CI over seeds, and their tested epochs."""
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


def write_report(sweep: Sweep, grid: list[GridRun]) -> dict[str, Path]:
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
    sweep: Sweep,
    folders: list[Path],
    name: str,
    make_table: Callable[[pd.DataFrame], pd.DataFrame],
    planned: int,
    note: str = "",
) -> dict[str, Path]:
    """``comparison/`` of the tested run folders, and the table ``make_table(comparison)`` as
    ``<name>.md`` and ``<name>.csv`` in the sweep's folder.

    Raises:
        DataError: none of the folders has test results yet.
    """
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


def print_report(written: dict[str, Path], table: str) -> None:
    """The study's table on standard output, the files written on standard error."""
    print(written[table].read_text(), flush=True)
    print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr, flush=True)
