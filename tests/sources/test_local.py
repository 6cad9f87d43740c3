"""Facts about local files: a repodata record beside a conda package counts only for its own bytes."""

from __future__ import annotations

import json
from pathlib import Path

from gate.sources.local import LocalOptions, local_facts
from tests.conftest import REPO
from tests.support.conda_policies import channel_copy

CHANNEL = REPO / "examples" / "conda" / "noarch"
PACKAGE = "agent-skill-conda-forge-0.0.21-h4616a5c_0.conda"


def _channel(tmp_path: Path, **record_changes: object) -> Path:
    return channel_copy(CHANNEL, PACKAGE, tmp_path, **record_changes)


def test_record_gives_upload_time_and_sidecar_digest(tmp_path: Path) -> None:
    facts = local_facts(_channel(tmp_path), LocalOptions())
    assert facts.file.uploaded is not None and facts.file.uploadedFrom == "timestamp"
    assert [a.verified for a in facts.attestations] == [True]


def test_record_for_other_bytes_is_ignored(tmp_path: Path) -> None:
    facts = local_facts(_channel(tmp_path, sha256="0" * 64, indexed_timestamp=1500000000000), LocalOptions())
    assert facts.file.uploaded is None  # the record's time was for other bytes


def test_malformed_repodata_section_is_no_record(tmp_path: Path) -> None:
    package = _channel(tmp_path)
    (tmp_path / "repodata.json").write_text(json.dumps({"packages.conda": ["oops"], "packages": "oops"}))
    facts = local_facts(package, LocalOptions())
    assert facts.file.uploaded is None and facts.file.subdir is None  # no record: nothing from repodata


def test_sidecars_are_not_read_when_no_policy_reads_attestations(tmp_path: Path) -> None:
    facts = local_facts(_channel(tmp_path), LocalOptions(reads_attestations=lambda ecosystem, name: False))
    assert facts.attestations == ()
