"""`gate explain`: each file's verdict and rules, when a denial for age ends or a waiver does, and the
newest allowed version, from a real index on loopback."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import serve

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: age}
spec:
  minimumAge: 7d
  exceptions:
    - packages: ["demo==3.0"]
      waive: [minimumAge]
      reason: hotfix
      owner: security@example.com
      expires: 2026-11-25
"""


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "age.yaml"
    path.write_text(POLICY)
    return path


def _explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["explain", *args, "--now", NOW.isoformat()])
    return code, capsys.readouterr().out


def test_explain_says_when_each_file_changes_and_the_newest_allowed(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = UpstreamIndex(tmp_path / "upstream")
    index.add_wheel("demo", "1.0", upload_time=NOW - dt.timedelta(days=30))
    index.add_wheel("demo", "2.0", upload_time=NOW - dt.timedelta(days=2))
    index.add_wheel("demo", "3.0", upload_time=NOW - dt.timedelta(days=1))
    with serve(index) as upstream:
        code, out = _explain(capsys, "demo", "-p", str(policy), "--index-url", upstream.url, "--format", "json")
        assert code == 0
        report: dict[str, Any] = json.loads(out)
        files = {f["version"]: f for f in report["files"]}
        assert report["newestAllowed"] == "3.0"
        assert files["1.0"]["verdict"] == "allow" and files["1.0"]["allowedFrom"] is None
        assert files["2.0"]["verdict"] == "deny"
        assert files["2.0"]["allowedFrom"] == "2026-11-27T00:00:00Z"  # uploaded 11-20 + 7d
        assert [v["rule"] for v in files["2.0"]["violations"]] == ["minimumAge"]
        assert files["3.0"]["verdict"] == "allow"
        assert files["3.0"]["allowedUntil"] == "2026-11-26T00:00:00Z"  # the waiver's last day ends
        code, text = _explain(capsys, "Demo==2.0", "-p", str(policy), "--index-url", upstream.url)
        assert code == 1
        assert "DENY  demo-2.0-py3-none-any.whl" in text and "demo-1.0" not in text
        assert "allowed from 2026-11-27T00:00:00Z" in text and "newest allowed version: 3.0" in text
        code, _ = _explain(capsys, "nosuch", "-p", str(policy), "--index-url", upstream.url)
        assert code == 2


@pytest.mark.parametrize("spec", ["demo>=1", "demo==", "", "demo @ https://x/"])
def test_explain_takes_a_project_or_one_version(spec: str, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _explain(capsys, spec, "-p", str(policy), "--index-url", "http://127.0.0.1:9/simple/")
    assert code == 2
