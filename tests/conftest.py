"""Shared fixtures: paths into ../shared/fixtures, checked to exist."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
ATTESTATIONS = FIXTURES / "attestations"


def asset_path(relative: str) -> Path:
    """A file under ../shared/fixtures that must exist."""
    path = FIXTURES / relative
    assert path.exists(), f"missing fixture {path}"
    return path


@pytest.fixture
def asset() -> Callable[[str], Path]:
    return asset_path
