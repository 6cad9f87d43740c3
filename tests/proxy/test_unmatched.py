"""The proxy denies what no policy governs (the same `gate.unmatched` decision as `gate check`), unless its
settings say `unmatched: warn|allow` explicitly; decisions cached under one setting never serve another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gate.evaluate import Unmatched
from tests.conftest import PolicyWriter

from .conftest import ATTESTED_POLICY, JSON_V1, AppFactory

DEMO = "demo-1.0-py3-none-any.whl"


def _files(client: FlaskClient, project: str) -> list[str]:
    response = client.get(f"/simple/{project}/", headers={"Accept": JSON_V1})
    assert response.status_code == 200, response.text
    return [row["filename"] for row in response.get_json(force=True)["files"]]


def test_a_project_no_policy_governs_is_hidden_and_refused(
    make_app: AppFactory, write_policy: PolicyWriter, tmp_path: Path
) -> None:
    client = make_app(write_policy(ATTESTED_POLICY)).test_client()  # governs sampleproject only
    assert _files(client, "demo") == []
    refused = client.get(f"/files/demo/{DEMO}")
    assert refused.status_code == 403
    assert "gate/gate.unmatched: no policy governs pypi package 'demo'" in refused.text
    audit = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    assert any(r["file"] == DEMO and r["event"] == "download" and not r["served"] for r in audit)


def test_unmatched_warn_serves_and_logs_allow_serves(
    make_app: AppFactory, write_policy: PolicyWriter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policies = write_policy(ATTESTED_POLICY)
    denied = make_app(policies).test_client()
    assert _files(denied, "demo") == []  # cached under the default first: the other settings must not reuse it
    warned = make_app(policies, unmatched=Unmatched.WARN).test_client()
    assert DEMO in _files(warned, "demo")
    assert warned.get(f"/files/demo/{DEMO}").status_code == 200
    audit = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    logged = [r for r in audit if r["file"] == DEMO and r["served"]]
    assert logged and all(r["rules"][0]["rule"] == "gate.unmatched" for r in logged)
    allowed = make_app(policies, unmatched=Unmatched.ALLOW).test_client()
    said = [r.getMessage() for r in caplog.records if r.name == "gate.proxy.state"]
    assert said == [f"unmatched {m}: files no policy matches are served" for m in ("warn", "allow")]
    assert DEMO in _files(allowed, "demo")
    assert allowed.get("/-/health").get_json()["policy_digest"] != denied.get("/-/health").get_json()["policy_digest"]
