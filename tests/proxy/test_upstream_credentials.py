"""Upstream credentials are sent to their upstream and shown or stored nowhere (issue 10, section 2).

A real `gate serve` (gunicorn, its log captured) in front of upstreams whose URLs carry a password: an
unreachable one (every answer is an error about it) and a reachable one that requires the password.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import requests

from gate.redact import redact, redact_text, split_credentials
from gate.sources.http import OriginAuth
from tests.conftest import PolicyWriter
from tests.support.gate_server import free_port, running_gate
from tests.support.scripted_pages import ALLOW_OLD, page_headers, project_page, repodata, wheel_name
from tests.support.scripted_upstream import Reply, scripted_upstream

SECRET = "Hunter2Pass"
WHEEL = b"wheel bytes of demo 1.0"
PACKAGE = b"conda bytes of demo 1.0"
PATHS = [
    "/simple/", "/simple/demo/", "/simple/missing/", "/simple/broken/", f"/files/demo/{wheel_name('demo')}",
    f"/provenance/demo/{wheel_name('demo')}", "/conda/ch/noarch/repodata.json", "/conda/ch/noarch/repodata.json.zst",
    "/conda/ch/noarch/demo-1.0-0.conda", "/conda/ch/noarch/missing-1.0-0.conda", "/conda/ch/channeldata.json",
    "/conda/ch/noarch/demo-1.0-0.conda.sigs", "/-/health", "/-/metrics",
]


def _leaks(text: bytes) -> bool:
    encoded = base64.b64encode(f"bob:{SECRET}".encode())
    return SECRET.encode() in text or encoded in text


def _everything_gate_kept(cache: Path, log: Path) -> dict[str, bytes]:
    files = {str(p): p.read_bytes() for p in cache.rglob("*") if p.is_file()}
    return {**files, str(log): log.read_bytes()}


def _visit(url: str) -> dict[str, requests.Response]:
    return {path: requests.get(url + path, timeout=30) for path in PATHS}


@pytest.mark.slow
def test_an_unreachable_upstream_is_named_without_its_password(tmp_path: Path, write_policy: PolicyWriter) -> None:
    policies = write_policy(ALLOW_OLD)
    nothing = f"http://bob:{SECRET}@127.0.0.1:{free_port()}"
    args = ["--policy", str(policies), "--upstream", f"{nothing}/simple/", "--conda-channel", f"ch={nothing}/ch",
            "--cache-dir", str(tmp_path / "cache"), "--workers", "1", "--threads", "4"]
    with running_gate(args, tmp_path / "gate.log") as url:
        answers = _visit(url)
    assert answers["/simple/demo/"].status_code == 503
    assert "127.0.0.1" in answers["/simple/demo/"].text  # the upstream is still named
    for path, answer in answers.items():
        assert not _leaks(answer.content), (path, answer.text)
    for name, data in _everything_gate_kept(tmp_path / "cache", tmp_path / "gate.log").items():
        assert not _leaks(data), name


@pytest.mark.slow
def test_a_password_upstream_gets_the_password_and_nothing_shows_it(tmp_path: Path, write_policy: PolicyWriter) -> None:
    policies = write_policy(ALLOW_OLD)
    with scripted_upstream() as upstream:
        upstream.require_auth("bob", SECRET)
        relative = {"filename": wheel_name("demo"), "url": f"../../files/{wheel_name('demo')}", "data": WHEEL}
        upstream.route("/simple/demo/", Reply(body=project_page("demo", [relative]), headers=page_headers()))
        upstream.route("/simple/broken/", Reply(500, b"upstream trouble\n"))
        upstream.route(f"/files/{wheel_name('demo')}", Reply(body=WHEEL))
        upstream.route("/ch/noarch/repodata.json", Reply(body=repodata("noarch", {"demo-1.0-0.conda": PACKAGE})))
        upstream.route("/ch/noarch/demo-1.0-0.conda", Reply(body=PACKAGE))
        upstream.route("/ch/channeldata.json", Reply(body=b'{"packages": {}}'))
        secret_base = upstream.base.replace("http://", f"http://bob:{SECRET}@")
        args = ["--policy", str(policies), "--upstream", f"{secret_base}/simple/",
                "--conda-channel", f"ch={secret_base}/ch", "--cache-dir", str(tmp_path / "cache"),
                "--workers", "1", "--threads", "4"]
        with running_gate(args, tmp_path / "gate.log") as url:
            answers = _visit(url)
        sent = [headers.get("Authorization") for _, headers in upstream.requests]
    # basic auth reached the upstream: the listed file and package came through
    assert answers[f"/files/demo/{wheel_name('demo')}"].content == WHEEL
    assert answers["/conda/ch/noarch/demo-1.0-0.conda"].content == PACKAGE
    assert sent and all(value is not None for value in sent)
    assert answers["/simple/broken/"].status_code == 502
    for path, answer in answers.items():
        assert not _leaks(answer.content), (path, answer.text)
    for name, data in _everything_gate_kept(tmp_path / "cache", tmp_path / "gate.log").items():
        assert not _leaks(data), name


def test_redact_hides_userinfo_tokens_and_anaconda_path_tokens() -> None:
    assert redact("https://bob:pw@host:8443/simple/") == "https://***@host:8443/simple/"
    assert redact("https://tok3n@host/simple/") == "https://***@host/simple/"
    shown = redact("https://host/f.whl?X-Amz-Signature=abc&token=t0k&version=2")
    assert "abc" not in shown and "t0k" not in shown and "version=2" in shown
    assert redact("https://conda.anaconda.org/t/tk-123/channel/noarch") == "https://conda.anaconda.org/t/***/channel/noarch"
    assert redact("not a url") == "not a url"
    assert redact_text("upstream http://a:b@h/x?api_key=k1 is down") == "upstream http://***@h/x?api_key=*** is down"


def test_credentials_leave_the_url_and_go_only_to_their_origin() -> None:
    clean, credential = split_credentials("http://bob:p%40ss@127.0.0.1:9/simple/")
    assert clean == "http://127.0.0.1:9/simple/"
    assert credential == (("http", "127.0.0.1", 9), "bob", "p@ss")
    auth = OriginAuth((credential,))
    mine = auth(requests.Request("GET", "http://127.0.0.1:9/simple/x/").prepare())
    other = auth(requests.Request("GET", "http://127.0.0.1:10/simple/x/").prepare())
    assert mine.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in other.headers
    assert SECRET not in repr(auth)
