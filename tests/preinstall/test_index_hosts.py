"""`gate check` of a pip report or lock fetches evidence only from the index it was told to trust and the
file hosts that index is known to use (the proxy's host policy): provenance an index row places on any
other host is not evidence, and that host is never asked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.cli import main
from tests.support.scripted_pages import ATTESTED, page_headers, project_page, wheel_name
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

WHEEL = b"the wheel"


@pytest.fixture
def internal_service() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        secret = Reply(body=b'{"internal": "swordfish"}', headers={"Content-Type": "application/json"})
        server.route("/provenance", secret)
        yield server


def test_provenance_on_another_host_is_not_fetched_by_check(
    tmp_path: Path, internal_service: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with scripted_upstream() as index:
        row = {"filename": wheel_name("demo"), "url": index.url("/files/" + wheel_name("demo")), "data": WHEEL,
               "provenance": internal_service.url("/provenance"), "upload-time": "2020-01-01T00:00:00Z"}
        index.route("/simple/demo/", Reply(body=project_page("demo", [row]), headers=page_headers()))
        item = {"download_info": {"url": index.url("/files/" + wheel_name("demo")),
                                  "archive_info": {"hashes": {"sha256": hashlib.sha256(WHEEL).hexdigest()}}},
                "metadata": {"name": "demo", "version": "1.0"}}
        report = tmp_path / "report.json"
        report.write_text(json.dumps({"version": "1", "install": [item]}))
        policy = tmp_path / "attested.yaml"
        policy.write_text(ATTESTED)
        code = main(["check", "-p", str(policy), "--index-url", index.url("/simple/"), "--pip-report", str(report),
                     "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    [attestation] = out["results"][0]["attestations"]
    assert not attestation["verified"] and "gate does not fetch from" in attestation["error"]
    assert internal_service.requests == []
