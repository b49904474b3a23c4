"""Reading run folders: run comparisons, curves, reports, and model summaries. Nothing here trains.

``imgcls summary`` and ``imgcls compare`` (``commands``) and ``notebooks/`` are built from these functions.
Each name is imported on first use, so that ``imgcls summary`` does not pay for pandas and TensorBoard.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "imgcls.analysis.compare": (
        "compare_runs",
        "group_runs",
        "to_markdown",
        "validation_curves",
        "write_comparison",
    ),
    "imgcls.analysis.runs": (
        "Run",
        "find_run_dirs",
        "load_run",
        "load_runs",
        "read_class_distribution",
        "read_confusion_matrix",
        "read_curves",
        "read_examples",
        "read_scalars",
        "read_table",
    ),
    "imgcls.models.summary": ("ModelSummary", "build_model", "summarize_model"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
