"""The status page `/-/` (gate.proxy.status) through Flask's test client: what it shows, who may read it,
and that it shows nothing it should not (upstream credentials, the token, markup from the data)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gate.cli import main
from gate.proxy.app import create_app
from gate.proxy.settings import LOOPBACK, Settings, parse_status_allow
from gate.proxy.status import MAX_DENIALS, MAX_TEXT, recent_denials, tail_lines
from tests.conftest import PolicyWriter
from tests.support.gate_app import gate_app
from tests.support.pypi_model import UpstreamFile
from tests.support.pypi_upstream import RunningUpstream

from .conftest import AGE_POLICY, NOW, AppFactory

TOKEN = "s3cret-status-token-0123456789"
DENIED = "demo-2.0-py3-none-any.whl"  # two days old under the 7-day minimum age
PAYLOAD = "<script>document.title='pwned'</script>"
WAIVERS = f"""
apiVersion: gate/v1
kind: Policy
metadata: {{name: waivers}}
spec:
  mode: audit
  match: {{ecosystems: [pypi], packages: ["demo*"]}}
  minimumAge: 7d
  exceptions:
    - {{packages: ["soon<2"], waive: [minimumAge], reason: "{PAYLOAD}", owner: sec@example.com, expires: 2026-11-10}}
    - {{packages: [later], waive: [minimumAge], reason: later, expires: 2027-01-31}}
    - {{packages: [gone], waive: [minimumAge], reason: gone, expires: 2026-10-01}}
  rules:
    - {{name: no-two, expression: "file.version != '2.0'", message: "{PAYLOAD}"}}
"""


def status(client: FlaskClient, **options: Any) -> dict[str, Any]:
    response = client.get("/-/", headers={"Accept": "application/json"}, **options)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.get_json()
    return body


def not_found(client: FlaskClient) -> bytes:
    """What an unknown path under `/-/` answers."""
    response = client.get("/-/no-such-page")
    assert response.status_code == 404
    return bytes(response.data)


def test_a_denial_shows_with_its_file_rule_client_and_time(client: FlaskClient) -> None:
    assert client.get(f"/files/demo/{DENIED}").status_code == 403
    body = status(client)
    newest = body["denials"][0]
    assert newest | {"rules": []} == {"time": "2026-11-01T00:00:00Z", "client": "127.0.0.1", "event": "download",
                                      "ecosystem": "pypi", "project": "demo", "file": DENIED, "served": False,
                                      "rules": []}
    assert newest["rules"][0].startswith("age/minimumAge: ")
    assert [p["name"] for p in body["policies"]] == ["age"] and body["policies"][0]["mode"] == "enforce"
    html = client.get("/-/").text
    assert DENIED in html and "age/minimumAge" in html


def test_policies_waivers_upstream_health_and_caches(make_app: AppFactory, write_policy: PolicyWriter,
                                                     upstream: RunningUpstream) -> None:
    client = make_app(write_policy(AGE_POLICY, WAIVERS)).test_client()
    for _ in range(2):
        assert client.get("/simple/demo/").status_code == 200
    upstream.fail_project("broken", 500)
    assert client.get("/simple/broken/").status_code == 502
    body = status(client)
    assert [(p["name"], p["mode"], p["packages"]) for p in body["policies"]] == [
        ("age", "enforce", ["*"]), ("waivers", "audit", ["demo*"])]
    assert all(len(p["digest"]) == 64 for p in body["policies"])
    assert [(w["packages"], w["days_left"], w["reason"]) for w in body["waivers"]] == [(["soon<2"], 10, PAYLOAD)]
    health = body["upstream_health"]
    assert health["failures"] == 1 and {"outcome": "502", "count": 1, "failure": True} in health["outcomes"]
    rendered = next(c for c in body["caches"] if c["cache"] == "pypi.rendered")
    assert rendered == {"cache": "pypi.rendered", "hits": 1, "misses": 1, "rate": 0.5}


def test_data_from_policies_upstream_and_the_audit_log_renders_as_text(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream
) -> None:
    hostile = "demo-3.0-<img src=x onerror=document.title=1>.tar.gz"  # a filename from the upstream page
    upstream.index.add(UpstreamFile(filename=hostile, project="demo", version="3.0", path=None, size=1,
                                    sha256=hashlib.sha256(b"x").hexdigest(), content=b"x",
                                    upload_time=NOW - dt.timedelta(days=60)))
    client = make_app(write_policy(AGE_POLICY, WAIVERS)).test_client()
    assert client.get("/simple/demo/").status_code == 200
    assert {d["file"] for d in status(client)["denials"]} >= {hostile, DENIED}
    response = client.get("/-/")
    html = response.text
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html  # rule message, waiver reason
    assert "demo-3.0-&lt;img src=x onerror=document.title=1&gt;.tar.gz" in html
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none': no script at all


def test_upstream_credentials_are_never_shown(tmp_path: Path, write_policy: PolicyWriter) -> None:
    settings: dict[str, Any] = {"upstream": "https://bob:hunter2-pass@pypi.example/simple/?token=q-secret",
                "conda_channels": (("internal", "https://alice:tr0ub4dor@conda.example/t/tk-1234/internal"),)}
    client = gate_app(write_policy(AGE_POLICY), cache_dir=tmp_path / "cache", clock=lambda: NOW,
                      **settings).test_client()
    for accept in ("text/html", "application/json"):
        text = client.get("/-/", headers={"Accept": accept}).text
        assert "pypi.example" in text and "conda.example" in text
        for secret in ("bob", "hunter2-pass", "q-secret", "alice", "tr0ub4dor", "tk-1234"):
            assert secret not in text


@pytest.mark.parametrize(
    ("address", "headers"),
    [
        ("10.1.2.3", {}),
        ("::ffff:10.1.2.3", {}),
        ("2001:db8::1", {}),
        ("10.1.2.3", {"X-Forwarded-For": "127.0.0.1"}),
        ("10.1.2.3", {"X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1", "Host": "127.0.0.1"}),
    ],
)
def test_other_clients_get_the_404_of_an_unknown_path(client: FlaskClient, address: str,
                                                      headers: dict[str, str]) -> None:
    response = client.get("/-/", headers=headers, environ_base={"REMOTE_ADDR": address})
    assert (response.status_code, response.data) == (404, not_found(client))


@pytest.mark.parametrize(
    ("host", "status_code"),
    [("localhost", 200), ("127.0.0.1:8080", 200), ("[::1]:8080", 200), ("gate.example:443", 200),
     ("rebound.attacker.example", 404), ("rebound.attacker.example:8080", 404), ("127.0.0.1@attacker.example", 404),
     ("[::1", 404)],
)
def test_by_address_only_under_gates_own_name(make_app: AppFactory, write_policy: PolicyWriter, host: str,
                                               status_code: int) -> None:
    """A page on a DNS-rebinding name that resolves to gate runs in the browser of someone on loopback (or
    an allowed network), under that name: the page does not answer there; the token still opens it."""
    app = make_app(write_policy(AGE_POLICY), public_url="https://gate.example/", status_token=TOKEN)
    client = app.test_client()
    assert client.get("/-/", headers={"Host": host}).status_code == status_code
    assert client.get("/-/", headers={"Host": host, "Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_ipv4_mapped_loopback_is_loopback(client: FlaskClient) -> None:
    assert client.get("/-/", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"}).status_code == 200
    assert client.get("/-/", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_status_allow_replaces_loopback(make_app: AppFactory, write_policy: PolicyWriter) -> None:
    client = make_app(write_policy(AGE_POLICY), status_allow=parse_status_allow(["10.0.0.0/8"])).test_client()
    assert client.get("/-/", environ_base={"REMOTE_ADDR": "10.200.0.9"}).status_code == 200
    for outside in ("11.0.0.1", "127.0.0.1"):
        assert client.get("/-/", environ_base={"REMOTE_ADDR": outside}).status_code == 404


def test_a_token_opens_it_and_a_wrong_one_is_answered_as_none(
    make_app: AppFactory, write_policy: PolicyWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_app(write_policy(AGE_POLICY), status_allow=(), status_token=TOKEN).test_client()
    closed = not_found(client)
    wrong = TOKEN[:-1] + "x"
    for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer \u00e9\U0001f600"}, {"Cookie": f"token={TOKEN}"}):
        response = client.get("/-/", headers=headers)
        assert (response.status_code, response.data) == (404, closed), headers
    assert client.get(f"/-/?token={TOKEN}").status_code == 404  # never in a URL (logs, history, Referer)
    for scheme in ("Bearer", "bearer"):
        for accept in ("text/html", "application/json"):
            response = client.get("/-/", headers={"Authorization": f"{scheme} {TOKEN}", "Accept": accept},
                                  environ_base={"REMOTE_ADDR": "203.0.113.7"})
            assert response.status_code == 200 and TOKEN not in response.text
            assert response.headers["Cache-Control"] == "no-store"
    assert TOKEN not in caplog.text


def test_no_audit_file_says_so(write_policy: PolicyWriter, upstream: RunningUpstream) -> None:
    settings = Settings(policies=(write_policy(AGE_POLICY),), upstream=upstream.url)  # no cache directory
    client = create_app(settings, clock=lambda: NOW).test_client()
    assert client.get(f"/files/demo/{DENIED}").status_code == 403
    body = status(client)
    assert body["denials"] == [] and body["audit"].startswith("no audit log file")


def record(n: int, verdict: str = "deny", **fields: Any) -> bytes:
    base = {"time": "2026-11-01T00:00:00Z", "client": "10.0.0.1", "event": "download", "ecosystem": "pypi",
            "project": "demo", "file": f"demo-{n}.whl", "verdict": verdict, "served": False,
            "rules": [{"policy": "age", "rule": "minimumAge", "message": "too new", "enforced": True}]}
    return json.dumps(base | fields).encode() + b"\n"


def test_the_audit_tail_is_bounded_and_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with path.open("wb") as log:
        for n in range(30_000):  # about 7 MiB
            log.write(record(n, "allow" if n % 3 else "deny"))
        log.write(b"{not json\n" + b"[" * 100_000 + b"\n")
        log.write(record(30_000)[:40])  # a line still being written
    denials, note = recent_denials(path)
    assert len(denials) == MAX_DENIALS
    assert [d["file"] for d in denials[:3]] == ["demo-29997.whl", "demo-29994.whl", "demo-29991.whl"]
    assert "2 unreadable line(s) skipped" in note


def test_tail_lines_keeps_only_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"first\nsecond\nthird\npartial")
    assert tail_lines(path, 100) == [b"first", b"second", b"third"]
    assert tail_lines(path, len(b"third\npartial")) == [b"third"]  # the limit falls just after a newline
    assert tail_lines(path, len(b"hird\npartial")) == []  # it cuts `third`


def test_odd_audit_records_render_bounded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(record(1, file="x" * 10_000, client=["a", {"b": 1}], time=7, rules="nope")
                     + b'"a string"\n' + record(2, rules=[{"policy": None, "message": 3, "enforced": True}]))
    second, first = recent_denials(path)[0]
    assert second["rules"] == ["/: 3"] and first["rules"] == []
    waived = {"policy": "p", "rule": "r", "message": "m", "enforced": False, "waived": "until 2027-01-01"}
    path.write_bytes(record(3, rules=[waived, waived | {"waived": None}]))
    assert recent_denials(path)[0][0]["rules"] == ["p/r: m (waived: until 2027-01-01)", "p/r: m (not enforced)"]
    assert len(first["file"]) == MAX_TEXT and first["client"] == '["a", {"b": 1}]' and first["time"] == "7"


def test_an_audit_path_that_is_not_a_file_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    assert recent_denials(fifo) == ([], f"cannot read the audit log {fifo}: not a regular file")
    assert recent_denials(tmp_path / "missing.jsonl")[1].endswith("No such file or directory")


def test_settings_of_the_status_page() -> None:
    env = {"GATE_POLICY": "p.yaml"}
    assert Settings.from_env(env).status_allow == LOOPBACK and Settings.from_env(env).status_token is None
    opened = Settings.from_env(env | {"GATE_STATUS_ALLOW": "10.0.0.0/8 2001:db8::/32 192.0.2.1",
                                      "GATE_STATUS_TOKEN": TOKEN})
    assert opened.status_allow == tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "2001:db8::/32", "192.0.2.1"))
    assert opened.status_token == TOKEN and TOKEN not in repr(opened)
    assert Settings.from_env(env | {"GATE_STATUS_ALLOW": "none"}).status_allow == ()
    for bad in ("10.1.2.3/8", "none 10.0.0.0/8", "localhost"):
        with pytest.raises(ValueError, match=r"none|CIDR"):
            Settings.from_env(env | {"GATE_STATUS_ALLOW": bad})
    for short in ("short", "sixteen chars ok", "x" * 15):
        with pytest.raises(ValueError, match="at least 16") as err:
            dataclasses.replace(opened, status_token=short)
        assert short not in str(err.value)


@pytest.mark.parametrize(
    ("token", "options", "said"),
    [
        ("tiny-secret", [], "at least 16"),
        (TOKEN, ["--status-allow", "none", "--status-allow", "10.0.0.0/8"], "cannot be combined"),
        (TOKEN, ["--status-allow", "10.1.2.3/8"], "host bits set"),
    ],
)
def test_gate_serve_refuses_bad_status_options(
    token: str, options: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "age.yaml").write_text(AGE_POLICY)
    (tmp_path / "token").write_text(token)
    args = ["serve", "--policy", str(tmp_path / "age.yaml"), "--port", "1", "--status-token-file",
            str(tmp_path / "token"), *options]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert said in err and "tiny-secret" not in err
