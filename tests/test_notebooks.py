"""The notebooks run from their own folder with their default settings, as a user runs them, against
run folders beside them (``../runs``); they keep their outputs stripped, and never train."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO
from tests.test_analysis_runs import make_old_repo

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# what only a training notebook would contain
TRAINING = re.compile(r"\bTrainer\(|\.fit\(|nn\.Module\b|LightningModule|optimizer\.step|loss\.backward")


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    from tests.test_reports import make_tiny_runs  # trains through the CLI: only the test that needs it

    return make_tiny_runs(tmp_path_factory.mktemp("tiny_runs"))


def run_notebook(path: Path, repo: Path) -> list[dict]:
    """Execute a copy of ``path`` in ``repo/notebooks`` (its kernel started there, as Jupyter does) with
    its default parameters; return the outputs of its code cells."""
    folder = repo / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(shutil.copy(path, folder / path.name), as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def check_figures(outputs: list[dict]) -> None:
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    # test accuracy, accuracy against GFLOPs, validation curves, confusion matrix, distribution, examples
    assert len(images) >= 6
    assert not [output for output in outputs if output.get("output_type") == "error"]
    printed = "".join(output.get("text", "") for output in outputs)
    assert "is not an image file" not in printed  # the examples were drawn from the images themselves


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
def test_notebook_runs_from_its_folder_on_runs_made_from_the_repository(path: Path, tmp_path: Path) -> None:
    # runs made and tested from the repository's root with relative paths, as older runs were:
    # predictions.csv names samples/eurosat/<class>/<file>, which the notebook's folder does not hold
    make_old_repo(tmp_path / "repo")
    check_figures(run_notebook(path, tmp_path / "repo"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_tiny_trained_runs(
    path: Path, tiny_runs: dict[str, list[Path]], tmp_path: Path
) -> None:
    runs_dir = tiny_runs["tiny"][0].parent.parent
    shutil.copytree(runs_dir, tmp_path / "repo" / "runs", ignore=shutil.ignore_patterns("*.ckpt"))
    check_figures(run_notebook(path, tmp_path / "repo"))
