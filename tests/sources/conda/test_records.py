"""A repodata record that names another package than its filename is a denial (`gate/gate.unjudgeable`),
never a rename: in `gate check` (a channel directory, an `@EXPLICIT` environment) and in the proxy alike."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.facts import AttestationFact, Ecosystem, FileFacts, Unidentified
from gate.gather.conda import record_facts
from gate.proxy.conda_routes import conda_blueprint
from gate.sources.conda_evidence import sidecar_attestations
from gate.verify.target import Target
from tests.conftest import FIXTURES
from tests.support.conda_channel import build_conda_package, epoch_ms, index_channel, set_record_fields
from tests.support.conda_policies import (
    SIGNED,
    SIGNED_SHA256,
    channel_copy,
    policy_document,
    signer_attestations,
    write_policies,
)
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app

CHANNEL = FIXTURES / "conda" / "channel-sigstore-example" / "linux-64"
RECORD = {"name": "signed-package", "version": "2.1.0", "build": "hb0f4dca_0", "sha256": SIGNED_SHA256}
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

DISAGREEING = [
    ({"name": "numpy", "version": "9.9"}, "name 'numpy'"),
    ({"version": "9.9"}, "version '9.9'"),
    ({"build": "h0_1"}, "build 'h0_1'"),
    ({"version": 2.1}, "version 2.1"),
    ({"name": None}, "name None"),
]


@pytest.mark.parametrize(("changes", "said"), DISAGREEING)
def test_a_record_that_disagrees_with_its_filename_has_no_facts(changes: dict[str, Any], said: str) -> None:
    record = {**RECORD, **changes}
    found = record_facts(SIGNED, record, "https://x/ch")
    assert isinstance(found, Unidentified)
    problem = found.reason
    assert f"its repodata record says {said}" in problem and "disagree" in problem


def test_an_agreeing_record_still_gives_facts() -> None:
    facts = record_facts(SIGNED, {**RECORD, "name": "Signed-Package"}, "https://x/ch")  # conda names: any case
    assert isinstance(facts, FileFacts)
    assert (facts.name, facts.version, facts.build) == ("signed-package", "2.1.0", "hb0f4dca_0")
    assert isinstance(record_facts(SIGNED, RECORD, "https://x/ch"), FileFacts)


def _channel_dir(directory: Path, **changes: Any) -> Path:
    return channel_copy(CHANNEL, SIGNED, directory, **changes)


def test_check_denies_real_bytes_reported_under_another_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real signed-package bytes, its real sidecar, and a record calling it numpy 9.9."""
    (tmp_path / "ch").mkdir()
    package = _channel_dir(tmp_path / "ch", name="numpy", version="9.9")
    policies = write_policies(
        tmp_path / "policies",
        policy_document("signed", ecosystems=["conda"], attestations=signer_attestations()),
    )
    code = main(["check", str(package), "-p", str(policies), "--format", "json"])
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert code == 1
    assert [(v["policy"], v["rule"]) for v in result["violations"]] == [("gate", "gate.unjudgeable")]
    assert "its repodata record says name 'numpy'" in result["violations"][0]["message"]
    assert result["facts"]["name"] != "numpy"
    # the same bytes and record, agreeing, are allowed: only the disagreement denies
    _channel_dir(tmp_path / "ch")
    assert main(["check", str(package), "-p", str(policies), "--format", "json"]) == 0


def test_the_proxy_denies_a_record_that_disagrees(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    old = epoch_ms(NOW - dt.timedelta(days=40))
    build_conda_package(channel / "noarch", "demo", "1.0", timestamp_ms=old)
    build_conda_package(channel / "noarch", "other", "1.0", timestamp_ms=old)
    index_channel(channel)  # sets indexed_timestamp to now: the builders' old timestamps are used instead
    set_record_fields(channel, "noarch", "demo-1.0-0.conda", indexed_timestamp=None)
    set_record_fields(channel, "noarch", "other-1.0-0.conda", indexed_timestamp=None, name="demo")
    policies = write_policies(tmp_path / "policies", policy_document("age", ecosystems=["conda"], minimumAge="7d"))
    with ChannelServer(channel) as upstream:
        app = gate_app(
            policies, cache_dir=tmp_path / "cache", clock=lambda: NOW,
            blueprints=(conda_blueprint({"local": upstream.url}),),
        )
        client = app.test_client()
        repodata = json.loads(client.get("/conda/local/noarch/repodata.json").data)
        listed = sorted([*repodata.get("packages", {}), *repodata.get("packages.conda", {})])
        assert listed == ["demo-1.0-0.conda"]
        refused = client.get("/conda/local/noarch/other-1.0-0.conda")
    assert refused.status_code == 403
    text = refused.get_data(as_text=True)
    assert "gate/gate.unjudgeable" in text and "its repodata record says name 'demo'" in text


@pytest.mark.parametrize("pin", ["../../etc/passwd", "ab" * 31, 7])
def test_a_pin_that_cannot_be_checked_fetches_no_pinned_sidecar(pin: Any) -> None:
    """The shared sidecar service (gate check and the proxy): the `.sigs` a bad pin covers is neither fetched
    (the pin never builds a name or URL) nor verified; the unpinned `.v0.sigs` is still looked for."""
    fetched: list[str] = []

    def fetch(name: str) -> tuple[str, bytes] | None:
        fetched.append(name)
        return None

    def verify(data: bytes, source: str, target: Target) -> list[AttestationFact]:
        raise AssertionError("nothing may be verified")

    target = Target(filename=SIGNED, sha256=SIGNED_SHA256, ecosystem=Ecosystem.CONDA)
    (fact,) = sidecar_attestations(SIGNED, target, {**RECORD, "attestations_sha256": pin}, fetch, verify)
    assert fetched == [SIGNED + ".v0.sigs"]
    assert not fact.verified and fact.error is not None and fact.error.startswith("sidecar-hash:")


def test_check_denies_a_filename_listed_twice_with_different_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the proxy does: which record a client installs by must not be a matter of order."""
    (tmp_path / "ch").mkdir()
    package = _channel_dir(tmp_path / "ch")
    repodata = json.loads((tmp_path / "ch" / "repodata.json").read_text())
    repodata.setdefault("packages", {})[SIGNED] = {**repodata["packages.conda"][SIGNED], "depends": ["evil"]}
    (tmp_path / "ch" / "repodata.json").write_text(json.dumps(repodata))
    policies = write_policies(tmp_path / "policies", policy_document("signed", ecosystems=["conda"]))
    code = main(["check", str(package), "-p", str(policies), "--format", "json"])
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert code == 1
    assert [(v["rule"], v["message"]) for v in result["violations"]] == [
        ("gate.unjudgeable", "the repodata lists this filename 2 times with different records")
    ]
