"""Fixtures for the proxy tests: policies on disk, a local upstream index, and the app in front of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import MINI_PYPI, PolicyWriter
from tests.support.gate_app import gate_app
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01"

AGE_POLICY = """
apiVersion: gate/v1
kind: Policy
metadata: {name: age}
spec:
  mode: enforce
  match: {ecosystems: [pypi]}
  minimumAge: 7d
"""

ATTESTED_POLICY = """
apiVersion: gate/v1
kind: Policy
metadata: {name: attested}
spec:
  mode: enforce
  match: {ecosystems: [pypi], packages: [sampleproject]}
  attestations:
    required: true
    signers:
      - publisher: {kind: GitHub, repository: pypa/sampleproject}
"""

AUDIT_POLICY = AGE_POLICY.replace("mode: enforce", "mode: audit").replace("name: age", "name: age-audit")



@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    """mini-pypi plus `demo` 1.0 (old), 1.1 (old, yanked) and 2.0 (two days before NOW)."""
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")
    index.add_wheel("demo", "1.0", upload_time=NOW - dt.timedelta(days=60))
    index.add_wheel("demo", "1.1", upload_time=NOW - dt.timedelta(days=30), yanked="broken")
    index.add_wheel("demo", "2.0", upload_time=NOW - dt.timedelta(days=2))
    return index


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(tmp_path: Path, upstream: RunningUpstream) -> AppFactory:
    """An app in front of `upstream` with the given policy directory; the clock is NOW unless given."""

    def make(policy: Path, *, clock: Callable[[], dt.datetime] = lambda: NOW, **settings: Any) -> Flask:
        return gate_app(policy, cache_dir=tmp_path / "cache", clock=clock, **{"upstream": upstream.url, **settings})

    return make


@pytest.fixture
def client(make_app: AppFactory, write_policy: PolicyWriter) -> FlaskClient:
    """The test client of an app enforcing the 7-day minimum age."""
    return make_app(write_policy(AGE_POLICY)).test_client()
