"""A violation says the same thing wherever it is shown: `gate check --format json`, the proxy's 403 (body
and reason phrase), `gate explain --format json` and the audit log carry one text per rule and file, and
that text names what the file showed (its upload time, the signer of its real provenance) and what the
rule asks for. One upstream index (mini-pypi's real sampleproject provenance, built `demo` wheels) and one
conda channel (the real signed package) behind the proxy, checked with the CLI against the same upstream.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from tests.conftest import MINI_PYPI
from tests.preinstall.conftest import NOW
from tests.support.conda_channel import add_fixture_signed_package, index_channel
from tests.support.conda_policies import (
    SIGNED,
    SIGNER_IDENTITY,
    TARGET_CHANNEL,
    policy_document,
    signer_attestations,
    write_policies,
)
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app
from tests.support.pylock_writer import write_pylock
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import serve

MOMENT = dt.datetime.fromisoformat(NOW.replace("Z", "+00:00"))
SAMPLE_IDENTITY = "https://github.com/pypa/sampleproject/.github/workflows/release.yml@refs/heads/main"
GITHUB = "https://token.actions.githubusercontent.com"
SLSA = "https://slsa.dev/provenance/v1"
PUBLISH = "https://docs.pypi.org/attestations/publish/v1"

POLICIES = f"""\
apiVersion: gate/v1
kind: Policy
metadata: {{name: age}}
spec:
  match: {{packages: [demo]}}
  minimumAge: 7d
  exceptions:
    - packages: ["demo==3.0"]
      waive: [minimumAge]
      reason: vetted by the security team
      owner: security@example.com
      expires: 2026-12-31
---
apiVersion: gate/v1
kind: Policy
metadata: {{name: provenance}}
spec:
  match: {{packages: [sampleproject]}}
  attestations:
    required: true
    predicateTypes: ["{SLSA}"]
    signers:
      - publisher: {{kind: GitHub, repository: pypa/other}}
"""

# (policy/rule, message, waived) of every violation, per file, as every front end must show them
Shown = dict[str, list[tuple[str, str, str | None]]]

EXPECTED: Shown = {
    "demo-1.0-py3-none-any.whl": [
        ("age/minimumAge", "uploaded 2026-11-20T23:59:59Z; allowed from 2026-11-28T00:00:00Z (minimum age 7d)", None),
    ],
    "demo-2.0-py3-none-any.whl": [
        ("age/minimumAge", "upload time unknown: the index gives none (whenUnknown: deny)", None),
    ],
    "demo-3.0-py3-none-any.whl": [
        ("age/minimumAge", "uploaded 2026-11-21T00:00:00Z; allowed from 2026-11-28T00:00:00Z (minimum age 7d)",
         "vetted by the security team, owner security@example.com, until 2026-12-31"),
    ],
    "sampleproject-4.0.0-py3-none-any.whl": [
        ("provenance/attestations.signers",
         f"signed by {SAMPLE_IDENTITY} (issuer {GITHUB}); allowed: GitHub publisher repository=pypa/other", None),
        ("provenance/attestations.predicateTypes",
         f"no verified attestation of predicate type {SLSA}; verified: {PUBLISH}", None),
    ],
    "sampleproject-3.0.0.tar.gz": [
        ("provenance/attestations.required", "no attestation", None),
        ("provenance/attestations.signers", "no attestation; allowed: GitHub publisher repository=pypa/other", None),
        ("provenance/attestations.predicateTypes", f"no attestation; required predicate types: {SLSA}", None),
    ],
}


def _shown(violations: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(f"{v['policy']}/{v['rule']}", v["message"], v.get("waived")) for v in violations]


def _from_body(body: str) -> list[tuple[str, str, str | None]]:
    """The denying rules a 403 body lists (`  - policy/rule: message`)."""
    return [(ref, message, None) for line in body.splitlines() if line.startswith("  - ")
            for ref, message in [line[4:].split(": ", 1)]]


def _from_audit(path: Path, event: str) -> Shown:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["file"]: _shown(r["rules"]) for r in records if r["event"] == event}


@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")
    index.add_wheel("demo", "1.0", upload_time=MOMENT - dt.timedelta(days=1, microseconds=500_000))
    index.add_wheel("demo", "2.0")  # the index gives no upload time
    index.add_wheel("demo", "3.0", upload_time=MOMENT - dt.timedelta(days=1))  # young, but waived
    return index


def test_every_front_end_shows_the_same_precise_message(
    index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "policies.yaml").write_text(POLICIES)
    with serve(index) as upstream:
        lock = write_pylock(tmp_path / "pylock.toml", index, upstream.url, set(EXPECTED))
        main(["check", "-p", str(policies), "--now", NOW, "--index-url", upstream.url, "--format", "json", str(lock)])
        captured = capsys.readouterr()
        assert captured.out.startswith("{"), captured.err
        report = json.loads(captured.out)
        checked = {r["file"]: _shown(r["violations"] + r["audit"]) for r in report["results"]}
        explained: Shown = {}
        for project in ("demo", "sampleproject"):
            main(["explain", project, "-p", str(policies), "--now", NOW, "--index-url", upstream.url,
                  "--format", "json"])
            files = json.loads(capsys.readouterr().out)["files"]
            explained |= {f["filename"]: _shown(f["violations"]) for f in files if f["filename"] in EXPECTED}
        client = gate_app(policies, cache_dir=tmp_path / "cache", clock=lambda: MOMENT,
                          upstream=upstream.url).test_client()
        refused: Shown = {}
        for filename, expected in EXPECTED.items():
            answer = client.get(f"/files/{filename.split('-')[0]}/{filename}")
            if any(waived is None for _, _, waived in expected):
                assert answer.status_code == 403, filename
                refused[filename] = _from_body(answer.get_data(as_text=True))
                ref, message, _ = expected[0]  # the first denying rule, in the reason phrase (cut to fit)
                assert f"{ref}: {message}"[:150] in answer.status
            else:
                assert answer.status_code == 200, filename  # a waived violation does not deny
    assert checked == EXPECTED
    assert explained == EXPECTED
    assert _from_audit(tmp_path / "cache" / "audit.jsonl", "download") == EXPECTED
    denying = {name: [v for v in shown if v[2] is None] for name, shown in EXPECTED.items()}
    assert refused == {name: shown for name, shown in denying.items() if shown}


def test_conda_signer_and_target_channel_messages_agree_in_check_proxy_and_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = tmp_path / "channel"
    add_fixture_signed_package(channel)  # the real package and its real CEP 27 sidecar, in linux-64
    index_channel(channel)
    other = "https://conda.example/other"
    signed = policy_document("signed", ecosystems=["conda"], packages=("signed-package",),
                             attestations=signer_attestations(targetChannel=other))
    strangers = policy_document("strangers", ecosystems=["conda"], packages=("signed-package",), attestations={
        "signers": [{"identity": "https://github.com/conda/*", "issuer": GITHUB}]})
    policies = write_policies(tmp_path / "policies", signed, strangers)
    expected = [
        ("signed/attestations.targetChannel", f"verified targetChannel: {TARGET_CHANNEL}; required: {other}", None),
        ("strangers/attestations.signers",
         f"signed by {SIGNER_IDENTITY} (issuer {GITHUB}); allowed: https://github.com/conda/* (issuer {GITHUB})", None),
    ]
    with ChannelServer(channel) as upstream:
        app = gate_app(policies, cache_dir=tmp_path / "cache", clock=lambda: MOMENT,
                       conda_channels=(("up", upstream.url),))
        answer = app.test_client().get(f"/conda/up/linux-64/{SIGNED}")
    main(["check", "-p", str(policies), "--now", NOW, "--format", "json", str(channel / "linux-64" / SIGNED)])
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert answer.status_code == 403
    assert sorted(_shown(result["violations"])) == expected
    assert sorted(_from_body(answer.get_data(as_text=True))) == expected
    assert {k: sorted(v) for k, v in _from_audit(tmp_path / "cache" / "audit.jsonl", "download").items()} == {
        SIGNED: expected
    }
    ref, message, _ = expected[0]
    assert f"{ref}: {message}"[:150] in answer.status
