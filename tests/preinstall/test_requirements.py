"""`gate check -r requirements.txt`: pip's own resolver against a loopback index, then the check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from gate.sources.pip_report import pip_environment
from tests.preinstall.conftest import EXAMPLE_POLICY, NOW, SAMPLE_WHEEL
from tests.support.pypi_upstream import RunningUpstream


@pytest.mark.slow
def test_requirements_resolved_by_pip(
    tmp_path: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("sampleproject==4.0.0\n", encoding="utf-8")
    code = main(["check", "-p", str(EXAMPLE_POLICY), "--now", NOW, "-r", str(requirements),
                 "--index-url", upstream.url])
    out = capsys.readouterr().out
    assert code == 1
    assert f"ALLOW {SAMPLE_WHEEL}" in out
    assert "DENY  peppercorn-0.6-py3-none-any.whl" in out  # a dependency pip chose: new, no provenance
    assert re.search(r"example/minimumAge: uploaded \S+Z; allowed from \S+Z \(minimum age 7d\)", out)
    assert "/simple/peppercorn/" in upstream.request_log


@pytest.mark.slow
def test_unresolvable_requirements_are_a_usage_error(
    tmp_path: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-project-here\n", encoding="utf-8")
    code = main(["check", "-p", str(EXAMPLE_POLICY), "-r", str(requirements), "--index-url", upstream.url])
    assert code == 2
    assert "pip could not resolve" in capsys.readouterr().err


@pytest.mark.slow
def test_report_written_by_real_pip(
    tmp_path: Path, upstream: RunningUpstream, age_policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "--index-url", upstream.url, "gate-demo"]
    result = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]] == ["gate-demo"]
    code = main(["check", "-p", str(age_policy), "--now", NOW, "--pip-report", str(report),
                 "--index-url", upstream.url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ALLOW gate_demo-1.0-py3-none-any.whl" in out
    assert "uploaded: 2025-01-02" in out
