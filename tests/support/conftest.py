"""Fixtures and helpers shared by the tests of the local upstream index (test_pypi_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import MINI_PYPI

from .pypi_model import UpstreamIndex
from .pypi_pages import JSON_V1

DEMO_WHEEL = "gate_demo-1.1-py3-none-any.whl"


@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    """mini-pypi plus a two-release built project ``gate-demo`` (1.1 needs Python >= 3.9)."""
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")
    index.add_wheel("Gate-Demo", "1.0", upload_time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    index.add_wheel("Gate-Demo", "1.1", requires_python=">=3.9", upload_time=datetime(2025, 2, 1, tzinfo=UTC))
    return index


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session closed after the test."""
    with requests.Session() as session:
        yield session


def get_json(http: requests.Session, url: str) -> dict[str, object]:
    """GET a PEP 691 page and return its parsed body."""
    response = http.get(url, headers={"Accept": JSON_V1})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_V1
    body: dict[str, object] = response.json()
    return body


def file_rows(page: dict[str, object]) -> dict[str, dict[str, object]]:
    """The page's file rows keyed by filename."""
    rows = page["files"]
    assert isinstance(rows, list)
    return {row["filename"]: row for row in rows}

