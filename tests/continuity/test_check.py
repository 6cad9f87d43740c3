"""`spec.continuity` and age from signed time in `gate check`: a pip report (written by real pip against the
loopback index) is judged with the index's history, as the proxy judges it; a local file has no history."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from gate.sources.pip_report import pip_environment
from tests.conftest import ATTESTATIONS
from tests.continuity.conftest import NOW, RECENT, SAMPLE_WHEEL, policy, wheel
from tests.support.pypi_upstream import RunningUpstream

WHEN = NOW.isoformat()


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_pip_report_is_judged_against_the_index_history(
    tmp_path: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.index.add_wheel("sampleproject", "4.0.1", upload_time=RECENT)
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
               "--report", str(report), "--index-url", upstream.url, "sampleproject"]
    result = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [i["metadata"]["version"] for i in json.loads(report.read_text())["install"]] == ["4.0.1"]
    code = main(["check", "-p", str(_policy(tmp_path, policy())), "--now", WHEN, "--pip-report", str(report),
                 "--index-url", upstream.url])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"DENY  {wheel('sampleproject', '4.0.1')}" in out
    assert ("4.0.1 has no provenance; 4.0.0 (2024-11-06) was published by GitHub pypa/sampleproject release.yml"
            in out)
    code = main(["check", "-p", str(_policy(tmp_path, policy())), "--now", WHEN, "--pip-report", str(report),
                 "--index-url", upstream.url, "--format", "json"])
    [decision] = json.loads(capsys.readouterr().out)["results"]
    bar = decision["continuity"]["major"]
    assert code == 1 and decision["continuity"]["known"] and bar["version"] == "4.0.0"
    assert bar["publishers"] == [{"kind": "GitHub", "repository": "pypa/sampleproject", "workflow": "release.yml",
                                  "environment": None, "workflowFilepath": None, "email": None}]


def test_a_local_file_has_no_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No index, no history: denied and said so, unless `whenUnknown: allow`."""
    local = tmp_path / SAMPLE_WHEEL
    shutil.copy(ATTESTATIONS / "dists" / SAMPLE_WHEEL, local)
    code = main(["check", "-p", str(_policy(tmp_path, policy())), "--now", WHEN, str(local)])
    out = capsys.readouterr().out
    assert code == 1
    assert "the release history of sampleproject is unknown: gate has no index history for it" in out
    assert "whenUnknown: deny" in out
    lenient = _policy(tmp_path, policy("{noDowngrade: true, whenUnknown: allow}"))
    assert main(["check", "-p", str(lenient), "--now", WHEN, str(local)]) == 0
