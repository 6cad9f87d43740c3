"""A local PyPI-shaped index on loopback (the proxy tests' upstream) for pre-install checks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import MINI_PYPI, REPO
from tests.support.pypi_model import UpstreamIndex

EXAMPLE_POLICY = REPO / "policies" / "example.yaml"
NOW = "2026-11-22T00:00:00Z"
SAMPLE_WHEEL = "sampleproject-4.0.0-py3-none-any.whl"
SAMPLE_SHA256 = "c23e447ea90d796d1e645c35c4b2de125040add12a845825546f91c93f391b6b"
AGE_POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: age}
spec:
  minimumAge: 7d
"""


@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    """mini-pypi (sampleproject 4.0.0 with real provenance) plus built wheels of its dependency."""
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")
    index.add_wheel("peppercorn", "0.6", upload_time=datetime(2026, 11, 20, tzinfo=UTC))
    index.add_wheel("gate-demo", "1.0", upload_time=datetime(2025, 1, 2, tzinfo=UTC))
    return index


@pytest.fixture
def age_policy(tmp_path: Path) -> Path:
    path = tmp_path / "age.yaml"
    path.write_text(AGE_POLICY, encoding="utf-8")
    return path
