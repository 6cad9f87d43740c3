"""Age from signed time for conda: a channel whose repodata record has neither `indexed_timestamp` nor
`timestamp` gives no upload time; the real signed package's verified `.sigs` sidecar (Rekor, production) does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from gate.sources.local import LocalOptions, local_facts
from tests.support.conda_channel import FIXTURE_CHANNEL
from tests.support.conda_policies import SIGNED, channel_copy

POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {{name: age}}
spec:
  match: {{ecosystems: [conda]}}
  minimumAge: {minimum}
"""


def _untimed(tmp_path: Path) -> Path:
    package = channel_copy(FIXTURE_CHANNEL / "linux-64", SIGNED, tmp_path / "channel")
    repodata = json.loads((package.parent / "repodata.json").read_text())
    for key in ("indexed_timestamp", "timestamp"):
        repodata["packages.conda"][SIGNED].pop(key, None)
    (package.parent / "repodata.json").write_text(json.dumps(repodata))
    return package


def test_a_conda_package_without_a_repodata_time_is_aged_by_its_sidecar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _untimed(tmp_path)
    facts = local_facts(package, LocalOptions())
    assert facts.file.uploaded is None and facts.file.signedTime is not None
    assert facts.file.signedFrom == "transparency-log"
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "age.yaml").write_text(POLICY.format(minimum="7d"))
    assert main(["check", "-p", str(policies), "--now", "2026-11-01T00:00:00Z", str(package)]) == 1
    assert "upload time unknown" in capsys.readouterr().out
    (policies / "age.yaml").write_text(POLICY.format(minimum="{age: 7d, timeSources: [index, transparencyLog]}"))
    assert main(["check", "-p", str(policies), "--now", "2026-11-01T00:00:00Z", str(package)]) == 0
