"""Files and evidence only from hosts the operator allowed, every redirect hop checked (issue 10, section 3).

A hostile upstream on loopback lists URLs on an "internal service" (another loopback server, not allowed)
and redirects to it; the internal service must never be asked, and its body never come back.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gate.proxy.pypi import SERVICE
from gate.proxy.pypi_index import PypiIndex
from gate.sources.hosts import HostPolicy, HostRefusedError, internal, parse_host
from tests.conftest import FIXTURES
from tests.support.gate_app import gate_app
from tests.support.scripted_pages import ALLOW_OLD, ATTESTED, page_headers, project_page, repodata, wheel_name
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WHEEL = b"the wheel"
INTERNAL = b'{"internal": "db password is swordfish"}'
PROVENANCE = FIXTURES / "attestations" / "pep740" / "sampleproject-4.0.0.tar.gz.provenance"


@pytest.fixture
def upstream() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        yield server


@pytest.fixture
def internal_service() -> Iterator[ScriptedServer]:
    """A service gate must not reach: every path answers a secret."""
    with scripted_upstream() as server:
        for path in ("/", "/provenance", "/file.whl", "/secret"):
            server.route(path, Reply(body=INTERNAL, headers={"Content-Type": "application/json"}))
        yield server


Client = Callable[..., FlaskClient]


@pytest.fixture
def client(tmp_path: Path, upstream: ScriptedServer) -> Client:
    def make(*policies: str, **settings: Any) -> FlaskClient:
        directory = tmp_path / "policies"
        directory.mkdir(exist_ok=True)
        for i, text in enumerate(policies or (ALLOW_OLD,)):
            (directory / f"p{i}.yaml").write_text(text)
        app = gate_app(directory, cache_dir=tmp_path / "cache", clock=lambda: NOW,
                       upstream=upstream.url("/simple/"), **settings)
        return app.test_client()

    return make


def _list(upstream: ScriptedServer, **row: Any) -> None:
    file = {"filename": wheel_name("demo"), "url": upstream.url("/files/demo.whl"), "data": WHEEL, **row}
    upstream.route("/simple/demo/", Reply(body=project_page("demo", [file]), headers=page_headers()))
    upstream.route("/files/demo.whl", Reply(body=WHEEL))


def test_a_file_on_another_host_is_refused_with_the_reason(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    _list(upstream, url=internal_service.url("/file.whl?X-Amz-Signature=sekrit"))
    answer = client().get(f"/files/demo/{wheel_name('demo')}")
    assert answer.status_code == 502 and answer.headers["Cache-Control"] == "no-store"
    assert f"127.0.0.1:{internal_service.server_port}" in answer.text and "--allow-host" in answer.text
    assert "sekrit" not in answer.text  # a signed URL is shown redacted
    assert internal_service.requests == []


def test_a_page_redirected_to_another_host_is_refused(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    upstream.route("/simple/demo/", Reply(301, headers={"Location": internal_service.url("/")}))
    answer = client().get("/simple/demo/")
    assert answer.status_code == 502 and "--allow-host" in answer.text
    assert internal_service.requests == []


def test_a_file_on_another_loopback_address_is_refused(client: Client, upstream: ScriptedServer) -> None:
    _list(upstream, url=f"http://127.0.0.2:{upstream.server_port}/files/demo.whl")
    answer = client().get(f"/files/demo/{wheel_name('demo')}")
    assert answer.status_code == 502 and "127.0.0.2" in answer.text


def test_a_redirect_to_another_host_is_checked_again(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    _list(upstream)
    upstream.route("/files/demo.whl", Reply(302, headers={"Location": internal_service.url("/file.whl")}))
    answer = client().get(f"/files/demo/{wheel_name('demo')}")
    assert answer.status_code == 502
    assert internal_service.requests == []


def test_allow_host_admits_a_file_host(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    internal_service.route("/file.whl", Reply(body=WHEEL))
    _list(upstream, url=internal_service.url("/file.whl"))
    allowed = client(allow_hosts=(("127.0.0.1", internal_service.server_port),))
    answer = allowed.get(f"/files/demo/{wheel_name('demo')}")
    assert answer.status_code == 200 and answer.data == WHEEL


def test_redirects_within_allowed_hosts_are_followed_and_bounded(client: Client, upstream: ScriptedServer) -> None:
    _list(upstream)
    upstream.route("/files/demo.whl", Reply(302, headers={"Location": "/files/moved.whl"}))
    upstream.route("/files/moved.whl", Reply(body=WHEEL))
    upstream.route("/files/loop.whl", Reply(302, headers={"Location": "/files/loop.whl"}))
    gate = client()
    assert gate.get(f"/files/demo/{wheel_name('demo')}").data == WHEEL
    _list(upstream, url=upstream.url("/files/loop.whl"))
    answer = gate.get(f"/files/demo/{wheel_name('demo')}")
    assert answer.status_code == 502 and "redirected more than" in answer.text, answer.text


def test_a_conda_package_served_from_another_host_is_refused(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    package = b"conda package bytes"
    internal_service.route("/noarch/demo-1.0-0.conda", Reply(body=package))
    listing = repodata("noarch", {"demo-1.0-0.conda": package}, base_url=internal_service.url("/"))
    upstream.route("/ch/noarch/repodata.json", Reply(body=listing))
    gate = client(conda_channels=(("ch", upstream.url("/ch")),))
    answer = gate.get("/conda/ch/noarch/demo-1.0-0.conda")
    assert answer.status_code == 502 and "--allow-host" in answer.text
    assert internal_service.requests == []


def test_provenance_on_another_host_is_not_evidence_and_never_fetched(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    _list(upstream, provenance=internal_service.url("/provenance"))
    gate = client(ATTESTED)
    refused = gate.get(f"/files/demo/{wheel_name('demo')}")
    assert refused.status_code == 403  # no verified attestation: the policy denies
    index: PypiIndex = gate.application.extensions[SERVICE]
    page = index.page("demo")
    (fact,) = index.judge(page, page.files[0], NOW).decision.facts.attestations
    assert not fact.verified and fact.error is not None and "gate does not fetch from" in fact.error
    served = gate.get(f"/provenance/demo/{wheel_name('demo')}")
    assert served.status_code in (403, 502) and b"swordfish" not in served.data  # 403: the file is denied
    assert internal_service.requests == []


def test_provenance_redirected_to_another_host_is_not_fetched(
    client: Client, upstream: ScriptedServer, internal_service: ScriptedServer
) -> None:
    _list(upstream, provenance=upstream.url("/provenance"))
    upstream.route("/provenance", Reply(307, headers={"Location": internal_service.url("/secret")}))
    served = client(ATTESTED).get(f"/provenance/demo/{wheel_name('demo')}")
    assert served.status_code in (403, 502) and b"swordfish" not in served.data  # 403: the file is denied
    assert internal_service.requests == []


def test_provenance_route_serves_only_a_provenance_object(client: Client, upstream: ScriptedServer) -> None:
    _list(upstream, provenance=upstream.url("/provenance"))
    upstream.route("/provenance", Reply(body=INTERNAL, headers={"Content-Type": "application/json"}))
    gate = client()
    answer = gate.get(f"/provenance/demo/{wheel_name('demo')}")
    assert answer.status_code == 502 and b"swordfish" not in answer.data
    _list(upstream, provenance=upstream.url("/real"), data=b"another wheel")  # provenance is cached by sha256
    upstream.route("/real", Reply(body=PROVENANCE.read_bytes(), headers={"Content-Type": "application/json"}))
    answer = gate.get(f"/provenance/demo/{wheel_name('demo')}")
    assert answer.status_code == 200 and answer.json == json.loads(PROVENANCE.read_bytes())


def test_internal_addresses_are_refused_unless_an_upstream_is_internal() -> None:
    public = HostPolicy.for_upstreams(["https://pypi.org/simple/"], [("127.0.0.1", 8080)])
    public.private = False  # as it is for pypi.org (decided here without asking DNS)
    assert ("files.pythonhosted.org", 443) in public.allowed
    with pytest.raises(HostRefusedError, match=r"internal address 127\.0\.0\.1"):
        public.check("http://127.0.0.1:8080/x")
    with pytest.raises(HostRefusedError, match="not the upstream's host"):
        public.check("https://evil.example/x")
    mirror = HostPolicy.for_upstreams(["http://127.0.0.1:3141/simple/"])
    mirror.check("http://127.0.0.1:3141/files/x.whl")  # the upstream is loopback itself
    for address in ("10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fd00::1", "0.0.0.0"):
        assert internal(ipaddress.ip_address(address)), address
    assert not internal(ipaddress.ip_address("151.101.0.223"))
    assert parse_host("Files.Example:8443") == ("files.example", 8443)
    assert parse_host("files.example") == ("files.example", 443)
    with pytest.raises(ValueError, match="HOST"):
        parse_host("user@host")
