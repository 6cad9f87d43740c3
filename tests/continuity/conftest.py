"""Releases of real projects with their real provenance (mini-pypi: sampleproject 4.0.0, pypi-attestations
0.0.16 and 0.0.19), next to releases without provenance built in the test upstream, for `spec.continuity` and
age from signed time (issue 15)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import ATTESTATIONS, MINI_PYPI, PolicyWriter
from tests.support.gate_app import gate_app
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
RECENT = NOW - dt.timedelta(days=10)  # when the releases without provenance were uploaded
JSON_V1 = "application/vnd.pypi.simple.v1+json"
SAMPLE_WHEEL = "sampleproject-4.0.0-py3-none-any.whl"
SAMPLE_SDIST = "sampleproject-4.0.0.tar.gz"
OLD_SDIST = "sampleproject-3.0.0.tar.gz"
# sampleproject 3.0.0's sdist as warehouse's functional tests attest it: a real attestation by a Google
# service account (PyPI itself has none for it), so 4.0.0 (GitHub pypa/sampleproject) is a publisher change
GOOGLE_ACCOUNT = "919436158236-compute@developer.gserviceaccount.com"


def policy(continuity: str = "{noDowngrade: true, within: major}", extra: str = "") -> str:
    return f"""
apiVersion: gate/v1
kind: Policy
metadata: {{name: continuity}}
spec:
  match: {{ecosystems: [pypi]}}
  continuity: {continuity}
{extra}"""


def provenance_of(attestation: Path, publisher: dict[str, Any], directory: Path) -> Path:
    """A PEP 740 provenance object holding one real attestation object, as PyPI serves it."""
    document = {"version": 1, "attestation_bundles": [
        {"publisher": publisher, "attestations": [json.loads(attestation.read_text())]},
    ]}
    path = directory / (attestation.name + ".provenance")
    path.write_text(json.dumps(document))
    return path


def attach_provenance(index: UpstreamIndex, filename: str, provenance: Path | None, **changes: Any) -> None:
    file = index.get_file(filename)
    assert file is not None, filename
    index.add(dataclasses.replace(file, provenance=provenance, **changes))


def google_attested_3_0_0(index: UpstreamIndex, directory: Path) -> None:
    attestation = ATTESTATIONS / "pep740" / "sampleproject-3.0.0.tar.gz.publish.attestation"
    publisher = {"kind": "Google", "email": GOOGLE_ACCOUNT}
    attach_provenance(index, OLD_SDIST, provenance_of(attestation, publisher, directory))


@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    """mini-pypi: sampleproject 3.0.0 (sdist, 2022, no provenance), 4.0.0 (wheel and sdist, 2024-11-06, real
    provenance from GitHub pypa/sampleproject release.yml)."""
    return UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")


AppFactory = Callable[..., FlaskClient]


@pytest.fixture
def gate(tmp_path: Path, upstream: RunningUpstream, write_policy: PolicyWriter) -> AppFactory:
    """A test client of the proxy in front of `upstream`, with the given policy texts, at NOW."""

    def make(*texts: str, clock: Callable[[], dt.datetime] = lambda: NOW) -> FlaskClient:
        app = gate_app(write_policy(*texts), cache_dir=tmp_path / "cache", clock=clock, upstream=upstream.url)
        return app.test_client()

    return make


def listed(client: FlaskClient, project: str = "sampleproject") -> list[str]:
    response = client.get(f"/simple/{project}/", headers={"Accept": JSON_V1})
    assert response.status_code == 200, response.text
    return [row["filename"] for row in response.get_json(force=True)["files"]]


def wheel(name: str, version: str) -> str:
    return f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
