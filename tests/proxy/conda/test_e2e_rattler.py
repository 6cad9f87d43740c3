"""py-rattler as the real client through a real `gate serve` (gunicorn, loopback) under one policy set
that covers PyPI and conda: solve picks what the policy allows, installs only that, and nothing
unfiltered leaks through `.zst`, shards or direct downloads."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import zstandard
from rattler import RepoDataRecord
from rattler.exceptions import InstallerError, SolverError

from gate.cli import main
from tests.support.conda_channel import (
    add_fixture_signed_package,
    build_conda_package,
    epoch_ms,
    payload_relpath,
    payload_text,
    set_record_fields,
)
from tests.support.conda_policies import SIGNED, TARGET_CHANNEL, policy_document, signer_attestations, write_policies
from tests.support.conda_rattler import install, solve
from tests.support.conda_server import ChannelServer
from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve
from tests.support.recording_relay import RecordingRelay

pytestmark = pytest.mark.slow
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def conda_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer]:
    """noarch: demo 1.0 (30 days), demo 2.0 (2 days), app 1.0 needing demo; linux-64: the real signed package."""
    channel = tmp_path_factory.mktemp("conda-upstream") / "channel"
    build_conda_package(channel / "noarch", "demo", "1.0", timestamp_ms=epoch_ms(NOW - 40 * DAY))
    build_conda_package(channel / "noarch", "demo", "2.0", timestamp_ms=epoch_ms(NOW - 2 * DAY))
    build_conda_package(channel / "noarch", "app", "1.0", depends=["demo"], timestamp_ms=epoch_ms(NOW - 40 * DAY))
    add_fixture_signed_package(channel)  # indexes the channel (with shards and .zst)
    for filename, days in (("demo-1.0-0.conda", 30), ("app-1.0-0.conda", 30), ("demo-2.0-0.conda", 2)):
        set_record_fields(channel, "noarch", filename, indexed_timestamp=epoch_ms(NOW - days * DAY))
    set_record_fields(channel, "linux-64", SIGNED, indexed_timestamp=None)  # its real 2025-09-01 timestamp
    with ChannelServer(channel) as server:
        yield server


@pytest.fixture(scope="module")
def pypi_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUpstream]:
    index = UpstreamIndex(work_dir=tmp_path_factory.mktemp("pypi-upstream"))
    index.add_wheel("demo", "1.0", upload_time=NOW - 30 * DAY)
    index.add_wheel("demo", "2.0", upload_time=NOW - 2 * DAY)
    with serve(index) as running:
        yield running


@pytest.fixture(scope="module")
def gate(
    conda_upstream: ChannelServer, pypi_upstream: RunningUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`gate serve` (gunicorn, one worker) with a 7-day age policy for pypi and conda, and the signed
    package's publisher and targetChannel required for it; yields the gate base URL."""
    tmp = tmp_path_factory.mktemp("gate")
    policies = write_policies(
        tmp / "policies",
        policy_document("age", ecosystems=["pypi", "conda"], minimumAge="7d"),
        policy_document(
            "signed", ecosystems=["conda"], packages=("signed-package",),
            attestations=signer_attestations(targetChannel=TARGET_CHANNEL),
        ),
    )
    args = [
        "--policy", str(policies), "--upstream", pypi_upstream.url, "--conda-channel", f"local={conda_upstream.url}/",
        # The default 8 threads (6 upstream slots): rattler probes several repodata variants at once and does
        # not retry a 503 `busy`, so the pool must hold a client's concurrency (docs/conda.md).
        "--cache-dir", str(tmp / "cache"), "--workers", "1",
    ]
    with running_gate(args, tmp / "serve.log") as url:
        yield url


def test_solver_picks_the_older_package_and_installs_it(gate: str, rattler_cache: Path, tmp_path: Path) -> None:
    records = solve(f"{gate}/conda/local", rattler_cache, ["app"])
    assert sorted((r.name.normalized, str(r.version)) for r in records) == [("app", "1.0"), ("demo", "1.0")]
    assert all(r.url.startswith(f"{gate}/conda/local/noarch/") for r in records)
    install(records, tmp_path / "env", rattler_cache)
    installed = (tmp_path / "env" / payload_relpath("demo")).read_text()
    assert installed == payload_text("demo", "1.0", "0")


def test_newer_package_is_unsatisfiable_through_gate(gate: str, rattler_cache: Path) -> None:
    with pytest.raises(SolverError):
        solve(f"{gate}/conda/local", rattler_cache, ["demo>=2"])


def test_denied_download_is_refused_with_reasons(
    gate: str, conda_upstream: ChannelServer, rattler_cache: Path, tmp_path: Path
) -> None:
    """A record solved elsewhere (straight from the upstream) cannot be installed through gate."""
    (record,) = solve(conda_upstream.url, rattler_cache, ["demo>=2"])
    url = f"{gate}/conda/local/noarch/{record.file_name}"
    through_gate = RepoDataRecord(record, record.file_name, url, f"{gate}/conda/local/")
    with pytest.raises(InstallerError, match="403") as caught:
        install([through_gate], tmp_path / "env", rattler_cache)
    assert "demo-2.0-0.conda" in str(caught.value)
    assert not (tmp_path / "env" / payload_relpath("demo")).exists()
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert re.search(r"age/minimumAge: uploaded [0-9T:-]+Z; allowed from [0-9T:-]+Z \(minimum age 7d\)", response.text)


def test_no_repodata_variant_yields_unfiltered_records(gate: str, conda_upstream: ChannelServer) -> None:
    base = f"{gate}/conda/local/noarch"
    compressed = requests.get(f"{base}/repodata.json.zst", timeout=10)
    assert compressed.status_code == 200
    repodata = json.loads(zstandard.ZstdDecompressor().decompress(compressed.content, max_output_size=1 << 24))
    assert sorted(repodata["packages.conda"]) == ["app-1.0-0.conda", "demo-1.0-0.conda"]
    plain = requests.get(f"{base}/repodata.json", timeout=10).json()
    assert plain == repodata
    for variant in ("repodata.json.bz2", "current_repodata.json", "repodata.json.jlap"):
        assert requests.get(f"{base}/{variant}", timeout=10).status_code == 404
        assert requests.head(f"{base}/{variant}", timeout=10).status_code == 404


def _conda_requests(gate: str) -> dict[str, float]:
    """gate's request counts of the conda subdir endpoint, by status."""
    prefix = 'gate_requests_total{endpoint="conda.subdir_file",status="'
    lines = requests.get(f"{gate}/-/metrics", timeout=10).text.splitlines()
    return {line[len(prefix) : len(prefix) + 3]: float(line.split()[-1]) for line in lines if line.startswith(prefix)}


def test_rattler_reads_gates_filtered_shards(gate: str, rattler_cache: Path) -> None:
    """rattler asks for the shard index first and gets gate's: it reads the shards it needs, filtered, and
    no repodata at all (tests/proxy/conda/test_shards_rattler.py: the same packages as through repodata)."""
    with RecordingRelay(gate) as relay:  # a fresh cache: rattler starts from the shards
        records = solve(f"{relay.url}/conda/local", rattler_cache, ["demo"])
    assert [str(r.version) for r in records] == ["1.0"]
    base = "/conda/local/noarch"
    answered = [(r.method, r.path, r.status) for r in relay.requests]
    assert answered[0] == ("GET", f"{base}/repodata_shards.msgpack.zst", 200)
    assert [(m, s) for m, p, s in answered if p.startswith(f"{base}/shards/")] == [("GET", 200)]  # demo's
    assert not [r for r in relay.requests if "repodata.json" in r.path]


def test_attested_package_is_admitted_by_the_attestation_policy(
    gate: str, conda_upstream: ChannelServer, rattler_cache: Path, tmp_path: Path
) -> None:
    records = solve(f"{gate}/conda/local", rattler_cache, ["signed-package"], platforms=("linux-64", "noarch"))
    (record,) = records
    assert record.file_name == SIGNED and record.sha256 is not None
    assert record.sha256.hex() == "54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f"
    install(records, tmp_path / "env", rattler_cache)
    assert any((tmp_path / "env" / "conda-meta").glob("signed-package-2.1.0-*.json"))
    assert f"/linux-64/{SIGNED}.sigs" in conda_upstream.paths()  # gate verified the sidecar


def test_the_same_policy_governs_the_pypi_side(gate: str) -> None:
    page = requests.get(
        f"{gate}/simple/demo/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=10
    ).json()
    assert [f["filename"] for f in page["files"]] == ["demo-1.0-py3-none-any.whl"]


def test_a_warm_rattler_cache_revalidates_with_gate(gate: str, rattler_cache: Path) -> None:
    """The second solve sends If-None-Match; gate's 304 repeats the ETag, as rattler requires."""
    solve(f"{gate}/conda/local", rattler_cache, ["demo"])
    before = _conda_requests(gate)
    assert [str(r.version) for r in solve(f"{gate}/conda/local", rattler_cache, ["demo"])] == ["1.0"]
    assert _conda_requests(gate).get("304", 0) > before.get("304", 0)


def test_gate_check_decides_an_explicit_environment_solved_through_gate(
    gate: str, conda_upstream: ChannelServer, rattler_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock made through gate passes `gate check`; a package gate refuses makes the check fail."""
    age = policy_document("age", ecosystems=["pypi", "conda"], minimumAge="7d")
    policies = write_policies(tmp_path / "policies", age)
    records = solve(f"{gate}/conda/local", rattler_cache, ["app"])
    lines = [f"{r.url}#{r.sha256.hex()}" for r in records if r.sha256 is not None]
    env = tmp_path / "env.txt"
    env.write_text("# platform: noarch\n@EXPLICIT\n" + "\n".join(lines) + "\n")
    allow = ["--allow-host", urlsplit(gate).netloc, "--allow-host", urlsplit(conda_upstream.url).netloc]  # loopback
    assert main(["check", str(env), "--policy", str(policies), "--format", "json", *allow]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["facts"]["index"] for r in report["results"]} == {f"{gate}/conda/local"}
    assert [r["facts"]["uploadedFrom"] for r in report["results"]] == ["indexed_timestamp"] * 2
    env.write_text(env.read_text() + f"{gate}/conda/local/noarch/demo-2.0-0.conda\n")
    assert main(["check", str(env), "--policy", str(policies), *allow]) == 2
    refused = capsys.readouterr().err
    assert "HTTP 403" in refused and "minimumAge" not in refused  # the status only: a body is never echoed
    upstream_env = tmp_path / "upstream.txt"  # the same lock pointing at the upstream: decided by policy
    upstream_env.write_text(f"@EXPLICIT\n{conda_upstream.url}/noarch/demo-2.0-0.conda\n")
    assert main(["check", str(upstream_env), "--policy", str(policies), *allow]) == 1
    assert "DENY  age/minimumAge" in capsys.readouterr().out
