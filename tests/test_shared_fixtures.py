"""Without ../shared beside the repository the suite stops with one line saying so, not a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_missing_shared_fixtures_is_one_clear_line(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # no tmp_path / "shared" beside it
    shutil.copytree(REPO / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO / "pyproject.toml", repo / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo, capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # pytest's usage error
    assert output.strip() == (
        f"ERROR: ../shared/fixtures not found at {tmp_path / 'shared' / 'fixtures'}: "
        "clone the shared fixtures beside the repo"
    )
