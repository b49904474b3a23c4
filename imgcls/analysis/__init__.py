"""Reading run folders: model summaries, run comparisons and plots. Nothing here trains.

``imgcls summary`` and ``imgcls compare`` (``commands``) and ``notebooks/`` are built from these functions.
"""

from imgcls.analysis.compare import compare_runs, group_runs, to_markdown, write_comparison
from imgcls.analysis.runs import Run, find_run_dirs, load_run, load_runs, read_curves, read_scalars
from imgcls.analysis.summary import ModelSummary, build_model, summarize_model

__all__ = [
    "ModelSummary",
    "Run",
    "build_model",
    "compare_runs",
    "find_run_dirs",
    "group_runs",
    "load_run",
    "load_runs",
    "read_curves",
    "read_scalars",
    "summarize_model",
    "to_markdown",
    "write_comparison",
]
