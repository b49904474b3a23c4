from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.fixtures import make_all

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # decoded-image caches (~/.cache/imgcls) and library caches of the tests stay out of the user's home
    os.environ["HOME"] = tempfile.mkdtemp(prefix="imgcls-test-home-")


@pytest.fixture(scope="session")
def fixture_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every generated fixture dataset, written once per test session."""
    return make_all(tmp_path_factory.mktemp("fixtures"))


@pytest.fixture
def eurosat_root(fixture_roots: dict[str, Path]) -> Path:
    return fixture_roots["eurosat"]


@pytest.fixture
def folder_root(fixture_roots: dict[str, Path]) -> Path:
    return fixture_roots["image_folder"]
