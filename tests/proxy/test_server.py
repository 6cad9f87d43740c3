"""`gate serve` runs a production server by default: gunicorn, which keeps connections alive, never
Werkzeug's development server (`Server: Werkzeug`, `Connection: close`)."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gate.cli import main
from tests.support.gate_server import running_gate
from tests.support.pypi_upstream import RunningUpstream

AGE = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 7d}\n"


def test_gate_serve_is_gunicorn_by_default(tmp_path: Path, upstream: RunningUpstream) -> None:
    policy = tmp_path / "age.yaml"
    policy.write_text(AGE)
    with running_gate(["--policy", str(policy), "--upstream", upstream.url], tmp_path / "serve.log") as url:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            for _ in range(2):  # two requests on one connection: it is kept alive
                connection.request("GET", "/-/health")
                response = connection.getresponse()
                response.read()
                assert response.status == 200
                assert "werkzeug" not in (response.getheader("Server") or "").lower()
                assert (response.getheader("Connection") or "").lower() != "close"
        finally:
            connection.close()
    assert "gunicorn" in (tmp_path / "serve.log").read_text().lower()


@pytest.mark.parametrize("option", [["--workers", "0"], ["--threads", "0"]])
def test_no_server_without_workers_or_threads(
    option: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "age.yaml"
    policy.write_text(AGE)
    assert main(["serve", "--policy", str(policy), "--port", "1", *option]) == 2
    assert "at least 1" in capsys.readouterr().err
