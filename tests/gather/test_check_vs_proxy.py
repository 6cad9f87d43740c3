"""The same index rows and conda records, judged through `gate check` and through the proxy, get the same
decision: both front ends take their facts from `gate.gather`, so none may allow what the other denies.

PyPI: one upstream index (real PEP 740 provenance for sampleproject, built wheels with every kind of row gate
treats specially) behind the proxy app, and a pylock.toml of every row checked with `--index-url` at the same
upstream. Conda: one channel (the real signed package with its sidecars, built packages, records edited to be
wrong in each way gate checks) behind the proxy, checked in its directory and as an `@EXPLICIT` environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from tests.conftest import MINI_PYPI
from tests.preinstall.conftest import NOW
from tests.support.conda_channel import (
    add_fixture_signed_package,
    build_conda_package,
    epoch_ms,
    index_channel,
    read_repodata,
    set_record_fields,
    write_repodata,
)
from tests.support.conda_policies import SIGNED, policy_document, signer_attestations, write_policies
from tests.support.conda_server import ChannelServer
from tests.support.gate_app import gate_app
from tests.support.outcomes import Outcome, check_outcomes, outcome, proxy_outcome
from tests.support.pylock_writer import write_pylock
from tests.support.pypi_model import UpstreamFile, UpstreamIndex
from tests.support.pypi_upstream import serve

MOMENT = dt.datetime.fromisoformat(NOW.replace("Z", "+00:00"))

PYPI_POLICIES = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: hygiene}
spec:
  match: {ecosystems: [pypi]}
  minimumAge: 7d
  rules:
    - {name: not-yanked, expression: "!file.yanked", message: yanked}
    - {name: final-only, expression: "!file.prerelease", message: prerelease}
---
apiVersion: gate/v1
kind: Policy
metadata: {name: provenance}
spec:
  match: {packages: [sampleproject]}
  attestations:
    required: true
    signers:
      - publisher: {kind: GitHub, repository: pypa/sampleproject}
---
apiVersion: gate/v1
kind: Policy
metadata: {name: continuity}
spec:
  match: {packages: [sampleproject]}
  continuity: {noDowngrade: true, within: major}
"""


def _row(index: UpstreamIndex, project: str, filename: str, version: str, **fields: Any) -> UpstreamFile:
    content = f"{filename} bytes".encode()
    return index.add(UpstreamFile(
        filename=filename, project=project, version=version, path=None, content=content,
        sha256=hashlib.sha256(content).hexdigest(), size=len(content), **fields,
    ))


@pytest.fixture
def pypi_index(tmp_path: Path) -> UpstreamIndex:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")
    old, young = MOMENT - dt.timedelta(days=40), MOMENT - dt.timedelta(days=1)
    index.add_wheel("demo", "1.0", upload_time=old)
    index.add_wheel("demo", "2.0", upload_time=young)
    index.add_wheel("demo", "3.0", upload_time=old, yanked="broken")
    index.add_wheel("demo", "4.0")  # no upload time
    index.add_wheel("demo", "5.0rc1", upload_time=old)
    unhashed = index.add_wheel("demo", "6.0", upload_time=old)
    index.add(dataclasses.replace(unhashed, sha256=""))  # the index gives no sha256 (only the lock has it)
    _row(index, "demo", "demo-7.0.exe", "7.0", upload_time=old)  # neither a wheel nor an sdist
    _row(index, "demo", "demo-8.0-x-py3-none-any.whl", "8.0", upload_time=old)  # an invalid build tag
    _row(index, "demo", "demo-9.0.tar.gz", "9.0", upload_time=old)  # an sdist
    index.add_wheel("sampleproject", "4.0.1", upload_time=old)  # no provenance after 4.0.0 had it
    return index


def _explained(project: str, policies: Path, url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["explain", project, "-p", str(policies), "--now", NOW, "--index-url", url, "--format", "json"])
    explained: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == (0 if explained["newestAllowed"] else 1)
    return explained


def test_pypi_rows_get_the_same_decision_from_check_explain_and_proxy(
    pypi_index: UpstreamIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "pypi.yaml").write_text(PYPI_POLICIES)
    with serve(pypi_index) as upstream:
        lock = write_pylock(tmp_path / "pylock.toml", pypi_index, upstream.url)
        code = main(["check", "-p", str(policies), "--now", NOW, "--index-url", upstream.url, "--format", "json",
                     str(lock)])
        checked = check_outcomes(json.loads(capsys.readouterr().out))
        app = gate_app(policies, cache_dir=tmp_path / "cache", clock=lambda: MOMENT, upstream=upstream.url)
        client = app.test_client()
        proxied: dict[str, Outcome] = {}
        explained: dict[str, Outcome] = {}
        explained_here: dict[str, Outcome] = {}  # the proxy's own /-/explain
        listed: set[str] = set()
        for project in pypi_index.projects():
            for file in pypi_index.files(project):
                answer = client.get(f"/files/{project}/{file.filename}")
                proxied[file.filename] = proxy_outcome(answer.status_code, answer.get_data())
            page = client.get(f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            listed |= {row["filename"] for row in page.get_json()["files"]}
            served = client.get(f"/-/explain/{project}", headers={"Accept": "application/json"}).get_json()
            explained_here |= {f["filename"]: outcome(f["verdict"], f["violations"]) for f in served["files"]}
            explanation = _explained(project, policies, upstream.url, capsys)
            explained |= {f["filename"]: outcome(f["verdict"], f["violations"]) for f in explanation["files"]}
    assert code == 1
    assert checked == proxied
    assert explained == proxied
    assert explained_here == proxied
    assert listed == {name for name, (verdict, _) in proxied.items() if verdict == "allow"}
    # the rows were chosen to reach every kind of decision, so agreement is not agreement on one answer
    outcomes = set(proxied.values())
    assert ("allow", ()) in outcomes
    assert {("deny", ("hygiene/minimumAge",)), ("deny", ("hygiene/not-yanked",)), ("deny", ("hygiene/final-only",)),
            ("deny", ("gate/gate.unjudgeable",))} <= outcomes
    assert proxied["sampleproject-4.0.0-py3-none-any.whl"] == ("allow", ())  # verified provenance, both ways
    assert proxied["sampleproject-4.0.1-py3-none-any.whl"] == (
        "deny", ("continuity/continuity", "provenance/attestations.required", "provenance/attestations.signers"))


def _conda_channel(root: Path) -> Path:
    channel = root / "channel"
    old, young = epoch_ms(MOMENT - dt.timedelta(days=40)), epoch_ms(MOMENT - dt.timedelta(days=1))
    for name, stamp in (("old", old), ("young", young), ("renamed", old), ("unhashed", old), ("twice", old)):
        build_conda_package(channel / "noarch", name, "1.0", timestamp_ms=stamp)
    build_conda_package(channel / "noarch", "tarball", "1.0", timestamp_ms=old, fmt="tar.bz2")
    add_fixture_signed_package(channel)  # the real package and sidecars, in linux-64
    index_channel(channel)
    for subdir in ("noarch", "linux-64"):  # the builders' timestamps, not the indexer's clock
        for filename in [*read_repodata(channel, subdir).get("packages", {}),
                         *read_repodata(channel, subdir).get("packages.conda", {})]:
            set_record_fields(channel, subdir, filename, indexed_timestamp=None)
    set_record_fields(channel, "linux-64", SIGNED, timestamp=old)
    set_record_fields(channel, "noarch", "renamed-1.0-0.conda", name="numpy")  # record and filename disagree
    set_record_fields(channel, "noarch", "unhashed-1.0-0.conda", sha256=None)  # nothing checks the download
    repodata = read_repodata(channel, "noarch")  # listed twice, with records that differ
    twice = repodata["packages.conda"]["twice-1.0-0.conda"]
    repodata.setdefault("packages", {})["twice-1.0-0.conda"] = {**twice, "timestamp": young}
    write_repodata(channel, "noarch", repodata)
    return channel


def _packages(channel: Path) -> list[tuple[str, str]]:
    return sorted((p.parent.name, p.name) for p in channel.glob("*/*") if p.name.endswith((".conda", ".tar.bz2")))


def test_conda_records_get_the_same_decision_from_check_and_proxy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = _conda_channel(tmp_path)
    hygiene = policy_document("hygiene", ecosystems=["conda"], minimumAge="7d")
    signed = policy_document("signed", ecosystems=["conda"], packages=("signed-package",),
                             attestations=signer_attestations())
    policies = write_policies(tmp_path / "policies", hygiene, signed)
    packages = _packages(channel)
    with ChannelServer(channel) as upstream:
        app = gate_app(policies, cache_dir=tmp_path / "cache", clock=lambda: MOMENT,
                       conda_channels=(("up", upstream.url),))
        client = app.test_client()
        proxied = {}
        for subdir, filename in packages:
            answer = client.get(f"/conda/up/{subdir}/{filename}")
            proxied[filename] = proxy_outcome(answer.status_code, answer.get_data())
        in_dirs = [str(channel / subdir / filename) for subdir, filename in packages]
        main(["check", "-p", str(policies), "--now", NOW, "--format", "json", *in_dirs])
        local = check_outcomes(json.loads(capsys.readouterr().out))
        env = tmp_path / "env.txt"
        env.write_text("@EXPLICIT\n" + "".join(f"{upstream.url}/{s}/{f}\n" for s, f in packages))
        main(["check", "-p", str(policies), "--now", NOW, "--format", "json", "--allow-host",
              upstream.url.split("//")[1].rstrip("/"), str(env)])
        explicit = check_outcomes(json.loads(capsys.readouterr().out))
    assert local == proxied
    assert explicit == proxied
    assert proxied[SIGNED] == ("allow", ()) and proxied["old-1.0-0.conda"] == ("allow", ())
    assert proxied["young-1.0-0.conda"] == ("deny", ("hygiene/minimumAge",))
    for wrong in ("renamed-1.0-0.conda", "unhashed-1.0-0.conda", "twice-1.0-0.conda"):
        assert proxied[wrong] == ("deny", ("gate/gate.unjudgeable",)), wrong
