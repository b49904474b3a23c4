"""The notebooks run against a tiny generated run, keep their outputs stripped, and never train."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO
from tests.test_reports import make_tiny_runs

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# what only a training notebook would contain
TRAINING = re.compile(r"\bTrainer\(|\.fit\(|nn\.Module\b|LightningModule|optimizer\.step|loss\.backward")


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    return make_tiny_runs(tmp_path_factory.mktemp("tiny_runs"))


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ should hold at least one notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stripped_and_never_trains(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "strip outputs before committing"
            assert not TRAINING.search(cell.source), f"notebooks read runs; they do not train: {cell.source}"
    assert any("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_a_tiny_run(path: Path, tiny_runs: dict[str, list[Path]], tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    runs_dir = tiny_runs["tiny"][0].parent.parent
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source += f"\nRUN_DIRS = [{str(runs_dir)!r}]\n"
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    # test accuracy, accuracy against GFLOPs, validation curves, confusion matrix, distribution, examples
    assert len(images) >= 6
    assert not [output for output in outputs if output.get("output_type") == "error"]
