"""The proxy fetches release provenance a policy points to (`spec.evidence.githubReleases`) from the
configured release host only, through the one HTTP client, cached; a loopback stand-in for GitHub's release
host serves a real cosign attest-blob bundle whose subject is rekor_monitor 4.0.1's wheel (not its sdist)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gate.cli import main
from gate.errors import PolicyError
from gate.gather.ports import Uncached
from gate.gather.releases import ReleaseEvidence
from gate.policy.compile import load_policy_text
from gate.policy.model import ReleaseSource
from gate.verify.api import BundleVerifier
from tests.slsa.cases import CASES
from tests.support.gate_app import gate_app
from tests.support.gate_server import clean_env, running_gate
from tests.support.pylock_writer import write_pylock
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve
from tests.support.release_host import ReleaseHost, release_host

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CASE = {c.id: c for c in CASES}["h-cosign-attest-blob-wheel"]
WHEEL = CASE.artifact
SDIST = WHEEL.with_name("rekor_monitor-4.0.1.tar.gz")
REPO, TAG, ASSET = "nate-lavoy/supply-chain-security", "v4.0.1", "sbom-attestation.bundle"
POLICY = f"""
apiVersion: gate/v1
kind: Policy
metadata: {{name: released}}
spec:
  match: {{ecosystems: [pypi], packages: [rekor-monitor]}}
  attestations:
    required: true
    signers: [{{identity: nl2587@nyu.edu, issuer: "https://github.com/login/oauth"}}]
  evidence:
    githubReleases:
      rekor_monitor: {{repository: {REPO}, tag: "v{{version}}", asset: {ASSET}}}
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[RunningUpstream]:
    index = UpstreamIndex(work_dir=tmp_path / "upstream")
    for path in (WHEEL, SDIST):
        index.add_file(path, upload_time=NOW - dt.timedelta(days=30))
    with serve(index) as running:
        yield running


def listed(client: FlaskClient) -> list[str]:
    response = client.get("/simple/rekor-monitor/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert response.status_code == 200, response.data
    return sorted(f["filename"] for f in json.loads(response.data)["files"])


def app_client(tmp_path: Path, upstream: RunningUpstream, releases: str, policy: str = POLICY) -> FlaskClient:
    (tmp_path / "policy.yaml").write_text(policy)
    app = gate_app(tmp_path / "policy.yaml", cache_dir=tmp_path / "cache", clock=lambda: NOW, upstream=upstream.url,
                   trusted_root=CASE.trusted_root, github_releases=releases)
    return app.test_client()


def test_release_provenance_allows_the_file_it_names(tmp_path: Path, upstream: RunningUpstream) -> None:
    host = ReleaseHost()
    host.add(REPO, TAG, ASSET, CASE.evidence[0].read_bytes())
    with release_host(host) as server:
        client = app_client(tmp_path, upstream, server.base)
        assert listed(client) == [WHEEL.name]  # the sdist is not among the bundle's subjects: hidden
        wheel = client.get(f"/files/rekor-monitor/{WHEEL.name}")
        assert wheel.status_code == 200 and wheel.data == WHEEL.read_bytes()
        assert client.get(f"/files/rekor-monitor/{SDIST.name}").status_code == 403
        assert listed(client) == [WHEEL.name]
    assert host.requests == [f"/{REPO}/releases/download/{TAG}/{ASSET}"]  # fetched once, kept in the store


def test_without_the_asset_nothing_is_evidence(tmp_path: Path, upstream: RunningUpstream) -> None:
    host = ReleaseHost()  # the release has no such asset: 404
    with release_host(host) as server:
        assert listed(app_client(tmp_path, upstream, server.base)) == []
    assert host.requests == [f"/{REPO}/releases/download/{TAG}/{ASSET}"]


def test_another_releases_evidence_is_not_evidence(tmp_path: Path, upstream: RunningUpstream) -> None:
    host = ReleaseHost()
    other = {c.id: c for c in CASES}["cosign-attest-blob-legacy-bundle-wheel"]  # dz_python_rekor_monitor's
    host.add(REPO, TAG, ASSET, other.evidence[0].read_bytes())
    with release_host(host) as server:
        assert listed(app_client(tmp_path, upstream, server.base)) == []


def test_a_redirect_off_the_release_host_is_not_followed(tmp_path: Path, upstream: RunningUpstream) -> None:
    """A release host may redirect (GitHub does, to its asset hosts): only to hosts gate knows it serves
    from, never to one a page or a policy names (here: a metadata address)."""
    host = ReleaseHost(redirect_to="http://169.254.169.254")
    with release_host(host) as server:
        client = app_client(tmp_path, upstream, server.base)
        assert listed(client) == []
        response = client.get(f"/files/rekor-monitor/{WHEEL.name}")
    assert response.status_code == 403
    assert b"169.254.169.254" in response.data and b"fetch:" in response.data, response.data[:2000]
    assert set(host.requests) == {f"/{REPO}/releases/download/{TAG}/{ASSET}"}  # asked again: a failure is not kept


def test_no_policy_naming_releases_means_no_release_host_is_asked(tmp_path: Path, upstream: RunningUpstream) -> None:
    host = ReleaseHost()
    with release_host(host) as server:
        policy = POLICY.split("  evidence:", maxsplit=1)[0]
        assert listed(app_client(tmp_path, upstream, server.base, policy)) == []
    assert host.requests == []


@pytest.mark.slow
def test_pip_installs_the_wheel_release_provenance_vouches_for(tmp_path: Path, upstream: RunningUpstream) -> None:
    """A real `gate serve` (gunicorn) with `--github-releases` at the stand-in, and a real pip: it installs the
    wheel, and cannot take the sdist the release provenance does not name."""
    host = ReleaseHost()
    host.add(REPO, TAG, ASSET, CASE.evidence[0].read_bytes())
    (tmp_path / "policy.yaml").write_text(POLICY)
    with release_host(host) as server:
        args = ["--policy", str(tmp_path / "policy.yaml"), "--upstream", upstream.url, "--cache-dir",
                str(tmp_path / "cache"), "--trusted-root", str(CASE.trusted_root), "--github-releases", server.base,
                "--workers", "1"]
        with running_gate(args, tmp_path / "serve.log") as url:
            wheel = pip(url, tmp_path / "wheel")
            sdist = pip(url, tmp_path / "sdist", "--no-binary", ":all:")
    assert wheel.returncode == 0, wheel.stderr
    assert sorted(p.name for p in (tmp_path / "wheel" / "target").glob("*.dist-info")) == [
        "rekor_monitor-4.0.1.dist-info"]
    assert sdist.returncode != 0 and "rekor-monitor" in sdist.stderr.lower().replace("_", "-")


def pip(gate: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    tmp.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-requires-python", "--target",
         str(tmp / "target"), "--index-url", f"{gate}/simple/", *args, "rekor-monitor"],
        capture_output=True, text=True, env=clean_env(tmp), timeout=120, check=False,
    )


@pytest.mark.parametrize("where", [
    "'../x'", "'a/..'", "'a/.git'", "'https://evil.example/x/y'", "'a/b/c'", "'a'", "'a/b?x=1'",
    "{repository: a/b, tag: 'v1'}", "{repository: a/b, tag: '{version}/../x'}", "{repository: a/b, asset: '../x'}",
    "{repository: a/b, asset: 'x/y'}", "{repository: a/b, host: evil.example}",
])
def test_a_policy_cannot_point_release_fetches_elsewhere(where: str) -> None:
    """Only OWNER/REPO, a tag template and an asset name, each a plain path segment: the host is the
    operator's (`--github-releases`), never the policy's."""
    text = POLICY.replace(f"{{repository: {REPO}, tag: \"v{{version}}\", asset: {ASSET}}}", where)
    assert text != POLICY
    with pytest.raises(PolicyError):
        load_policy_text(text)


def test_the_url_is_built_from_segments() -> None:
    (policy,) = load_policy_text(POLICY)
    (source,) = policy.policy.releases
    assert source == ReleaseSource("rekor-monitor", REPO, "v{version}", ASSET)
    releases = ReleaseEvidence("https://github.com/", [source], lambda url: None, Uncached(BundleVerifier()))
    assert releases.url(source, "1.0+local.1") == (
        f"https://github.com/{REPO}/releases/download/v1.0%2Blocal.1/{ASSET}")


def test_gate_check_of_a_lock_and_gate_explain_decide_as_the_proxy(
    tmp_path: Path, upstream: RunningUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    """One facts service: a pylock.toml naming both files, and `gate explain`, fetch the same release
    provenance (from `--github-releases`) and reach the proxy's decisions: the wheel allowed, the sdist denied."""
    host = ReleaseHost()
    host.add(REPO, TAG, ASSET, CASE.evidence[0].read_bytes())
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    index = UpstreamIndex(work_dir=tmp_path / "lock-upstream")
    for path in (WHEEL, SDIST):
        index.add_file(path)
    lock = write_pylock(tmp_path / "pylock.toml", index, upstream.url.removesuffix("simple/"))
    common = ["--policy", str(policy), "--index-url", upstream.url, "--trusted-root", str(CASE.trusted_root),
              "--now", NOW.isoformat()]
    with release_host(host) as server:
        capsys.readouterr()
        code = main(["check", str(lock), *common, "--github-releases", server.base, "--format", "json"])
        checked = json.loads(capsys.readouterr().out)
        explained_code = main(["explain", "rekor-monitor", *common, "--github-releases", server.base,
                               "--format", "json"])
        explained = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {r["file"]: r["verdict"] for r in checked["results"]} == {WHEEL.name: "allow", SDIST.name: "deny"}
    assert explained_code == 0, explained
    assert explained["newestAllowed"] == "4.0.1"
    assert {f["filename"]: f["verdict"] for f in explained["files"]} == {WHEEL.name: "allow", SDIST.name: "deny"}
    assert app_listed(tmp_path, upstream, host) == [WHEEL.name]


def app_listed(tmp_path: Path, upstream: RunningUpstream, host: ReleaseHost) -> list[str]:
    (tmp_path / "proxy").mkdir()
    with release_host(host) as server:
        return listed(app_client(tmp_path / "proxy", upstream, server.base))


def test_a_release_host_with_credentials_is_refused_without_echoing_them(capsys: pytest.CaptureFixture[str]) -> None:
    """`--github-releases` takes no credentials; the usage error must not copy them into a CI log."""
    assert main(["check", "x.whl", "--github-releases", "https://user:s3cret@example.com/"]) == 2
    err = capsys.readouterr().err
    assert "--github-releases" in err and "s3cret" not in err
