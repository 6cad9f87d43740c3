"""Hostile request paths against a real `gate serve` (gunicorn and werkzeug, whose percent-decoding is the
attack surface) in front of a real conda channel and a real PyPI upstream on loopback: no encoding of a name
may fetch a denied package's bytes, or unfiltered repodata, through any route."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from gate.proxy.paths import path_problem
from tests.support.conda_channel import build_conda_package, epoch_ms, index_channel, set_record_fields, write_sidecar
from tests.support.conda_policies import policy_document
from tests.support.conda_server import ChannelServer
from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

pytestmark = pytest.mark.slow
NOW = dt.datetime.now(dt.UTC)
DENIED_CONDA = ("fresh-1.0-0.conda", "fresh-2.0-0.tar.bz2")  # indexed now: denied by the 7-day minimum age
ALLOWED_CONDA = "old-1.0-0.conda"
DENIED_WHEEL = "demo-2.0-py3-none-any.whl"
ALLOWED_WHEEL = "demo-1.0-py3-none-any.whl"
SIDECAR = b"[{}]"  # what rattler's indexer accepts as a sidecar


@dataclass(frozen=True)
class Setup:
    gate: str
    channel: ChannelServer
    channel_dir: Path
    pypi: RunningUpstream
    audit: Path

    def denied_bytes(self) -> list[bytes]:
        conda = [(self.channel_dir / "noarch" / name).read_bytes() for name in DENIED_CONDA]
        wheel = self.pypi.index.get_file(DENIED_WHEEL)
        data = None if wheel is None else wheel.read_bytes()
        assert data is not None
        return [*conda, data]


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (no client-side normalization of `..` or escapes)."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The channel and the index behind `gate serve` (gunicorn, which percent-decodes the path before gate
    sees it)."""
    tmp = tmp_path_factory.mktemp("paths")
    channel_dir = tmp / "channel"
    for name, version, fmt in (("fresh", "1.0", "conda"), ("fresh", "2.0", "tar.bz2"), ("old", "1.0", "conda")):
        build_conda_package(channel_dir / "noarch", name, version, fmt=fmt, timestamp_ms=epoch_ms(NOW))  # type: ignore[arg-type]
    for name in (*DENIED_CONDA, ALLOWED_CONDA):
        write_sidecar(channel_dir / "noarch" / name, SIDECAR)
    index_channel(channel_dir)
    set_record_fields(channel_dir, "noarch", ALLOWED_CONDA, indexed_timestamp=epoch_ms(NOW - dt.timedelta(days=30)))
    index = UpstreamIndex(work_dir=tmp / "pypi")
    index.add_wheel("demo", "1.0", upload_time=NOW - dt.timedelta(days=60))
    index.add_wheel("demo", "2.0", upload_time=NOW - dt.timedelta(days=2))
    policy = tmp / "age.yaml"
    policy.write_text(yaml.safe_dump(policy_document("age", ecosystems=["pypi", "conda"], minimumAge="7d")))
    with ChannelServer(channel_dir) as channel, serve(index) as pypi:
        args = ["--policy", str(policy), "--upstream", pypi.url, "--conda-channel", f"ch={channel.url}",
                "--cache-dir", str(tmp / "cache")]
        with running_gate(args, tmp / "serve.log") as url:
            yield Setup(url, channel, channel_dir, pypi, tmp / "cache" / "audit.jsonl")


def _conda_attacks() -> list[str]:
    out = []
    for package in DENIED_CONDA:
        for tail in ("%23.conda.sigs", "%3F.conda.sigs", "%3Fx.tar.bz2.v0.sigs", "%23x.sigs", "%00.sigs",
                     "%2523.conda.sigs", "%253F.conda.sigs", ";.sigs", "%3B.conda.sigs", ".", ".sigs.",
                     "%0A.sigs", "%5C.sigs", "%2F.sigs", "%2F..%2F" + package, "/../" + package, "?.sigs",
                     "%20.sigs", ".sigs%00", ".sigs%23", ".sigs%3F"):
            out.append(f"/conda/ch/noarch/{package}{tail}")
        upper = package.upper()
        out += [f"/conda/ch/noarch/{upper}", f"/conda/ch/noarch/{upper}.SIGS",
                f"/conda/ch/noarch/%2e%2e%2fnoarch%2f{package}", f"/conda/ch/noarch/..%2F..%2Fnoarch%2F{package}",
                f"/conda/ch/noarch%2F{package}%23.sigs", f"/conda/ch%23/noarch/{package}",
                f"/conda/ch/%2e%2e/noarch/{package}", f"/conda/ch/noarch/x%2F..%2F{package}"]
    for tail in ("%23.conda.sigs", "%3F.conda.sigs", "%3Fx.tar.bz2.v0.sigs", "%2523.conda.sigs", "%00.conda.sigs"):
        out.append(f"/conda/ch/noarch/repodata.json{tail}")
        out.append(f"/conda/ch/noarch/repodata.json.zst{tail}")
    return out


def _pypi_attacks() -> list[str]:
    out = []
    for tail in ("%23", "%3F", "%3Fx", "%00", "%2523", "%0A", "%5C", ".", ";", "%23.metadata", "%3F.metadata"):
        out += [f"/files/demo/{DENIED_WHEEL}{tail}", f"/provenance/demo/{DENIED_WHEEL}{tail}"]
    for project in ("demo%23x", "demo%3Fx", "demo%2F..%2Fdemo", "%2e%2e", "demo%00", "demo%2523", "."):
        out += [f"/simple/{project}/", f"/files/{project}/{DENIED_WHEEL}", f"/provenance/{project}/{DENIED_WHEEL}"]
    out += [f"/files/demo/%2e%2e%2f{DENIED_WHEEL}", f"/files/demo/x%2F..%2F{DENIED_WHEEL}",
            f"/files/demo%2F{DENIED_WHEEL}"]
    return out


def test_no_encoding_of_a_name_reaches_denied_bytes_or_unfiltered_repodata(setup: Setup) -> None:
    denied = setup.denied_bytes()
    unfiltered = [(setup.channel_dir / "noarch" / name).read_bytes() for name in ("repodata.json", "repodata.json.zst")]
    answers = {path: raw_get(setup.gate, path) for path in [*_conda_attacks(), *_pypi_attacks()]}
    for path, (status, body) in answers.items():
        assert status in (301, 400, 403, 404), (path, status, body[:200])
        assert not any(data in body for data in denied), path
        assert body not in unfiltered and b'"packages"' not in body, path
    # upstream was never even asked for the denied packages, nor for any name the paths carried
    asked = [*setup.channel.paths(), *setup.pypi.request_log]
    assert not [p for p in asked if any(name in p for name in (*DENIED_CONDA, DENIED_WHEEL))]
    assert not [p for p in setup.channel.paths() if p.endswith(".sigs")]
    assert not [p for p in asked if any(c in p for c in "#?%;\\") or ".." in p]


def test_refused_names_are_audited(setup: Setup) -> None:
    status, body = raw_get(setup.gate, f"/conda/ch/noarch/{DENIED_CONDA[0]}%23.conda.sigs")
    assert status == 404 and b"refused" in body
    status, body = raw_get(setup.gate, f"/files/demo/{DENIED_WHEEL}%3F.metadata")
    assert status == 404 and b"refused" in body
    lines = [json.loads(line) for line in setup.audit.read_text().splitlines()]
    bad = [(r["ecosystem"], r["file"], r["rules"][0]["rule"]) for r in lines if r["event"] == "bad-path"]
    assert ("conda", f"{DENIED_CONDA[0]}#.conda.sigs", "gate.path") in bad
    assert ("pypi", f"{DENIED_WHEEL}?.metadata", "gate.path") in bad


def test_legitimate_names_still_work(setup: Setup) -> None:
    assert raw_get(setup.gate, f"/conda/ch/noarch/{ALLOWED_CONDA}") == (
        200, (setup.channel_dir / "noarch" / ALLOWED_CONDA).read_bytes()
    )
    assert raw_get(setup.gate, f"/conda/ch/noarch/{ALLOWED_CONDA}.sigs") == (200, SIDECAR)
    status, body = raw_get(setup.gate, f"/conda/ch/noarch/{DENIED_CONDA[0]}.sigs")  # refused like its package
    assert status == 403 and b"is denied by policy" in body and b"minimumAge" in body
    assert raw_get(setup.gate, f"/conda/ch/noarch/{DENIED_CONDA[0]}")[0] == 403
    assert raw_get(setup.gate, f"/conda/ch/noarch/{ALLOWED_CONDA}.v0.sigs")[0] == 404  # none upstream
    digest = hashlib.sha256(SIDECAR).hexdigest()  # the content-addressed copy: only under the advertised hash
    assert raw_get(setup.gate, f"/conda/ch/noarch/{ALLOWED_CONDA}.sigs.{digest}") == (200, SIDECAR)
    assert raw_get(setup.gate, f"/conda/ch/noarch/{ALLOWED_CONDA}.sigs.{'0' * 64}")[0] == 404
    repodata = json.loads(raw_get(setup.gate, "/conda/ch/noarch/repodata.json")[1])
    assert sorted([*repodata["packages"], *repodata["packages.conda"]]) == [ALLOWED_CONDA]
    assert raw_get(setup.gate, f"/files/demo/{ALLOWED_WHEEL}")[0] == 200
    assert raw_get(setup.gate, f"/files/demo/{DENIED_WHEEL}")[0] == 403
    assert raw_get(setup.gate, f"/provenance/demo/{DENIED_WHEEL}")[0] == 403  # evidence only of what is served


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [("filename", "a#b", "'#'"), ("filename", "a?b", "'?'"), ("filename", "a/b", "'/'"), ("filename", "a\\b", "'\\\\'"),
     ("filename", "a%23", "'%'"), ("filename", "a\x00", "control"), ("filename", "a\x85", "control"),
     ("filename", "..", "'..'"), ("filename", ".", "'.'"), ("filename", "", "empty"),
     ("rest", "shards/../x", "'..'"), ("project", "demo.", "project name"), ("project", "-demo", "project name")],
)
def test_path_problem(key: str, value: str, problem: str) -> None:
    found = path_problem(key, value)
    assert found is not None and problem in found


@pytest.mark.parametrize(("key", "value"), [("filename", "demo-1.0+local-py3-none-any.whl"), ("rest", "shards/ab.zst"),
                                            ("project", "Foo.Bar_baz"), ("filename", "x;y {1} !")])
def test_path_problem_accepts(key: str, value: str) -> None:
    assert path_problem(key, value) is None
