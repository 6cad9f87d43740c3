"""Fixtures of the conda source tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.conda_policies import SIGNED, SIGNED_PATH


@pytest.fixture
def signed_dir(tmp_path: Path) -> Path:
    """A directory holding a copy of the real signed package (no sidecar, no repodata)."""
    folder = tmp_path / "pkgs"
    folder.mkdir()
    shutil.copyfile(SIGNED_PATH, folder / SIGNED)
    return folder
