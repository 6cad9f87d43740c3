"""Correct answers when the upstream misbehaves (tests/support/scripted_upstream.py on loopback, the proxy in
Flask's test client): wrong or broken bodies are 502s with the reason and counted as such, compressed
files are checked by their decoded bytes, duplicate rows deny a filename, bad evidence does not stick."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

import gate.proxy.evidence
from gate.commands.common import byte_size
from gate.proxy.evidence import FAILURE_TTL
from gate.proxy.files import IntegrityError
from tests.conftest import MINI_PYPI, PolicyWriter
from tests.support.gate_app import gate_app
from tests.support.gate_server import clean_env, running_gate
from tests.support.pypi_wheels import build_wheel
from tests.support.scripted_pages import row
from tests.support.scripted_upstream import Reply, ScriptedServer, scripted_upstream, sequence

from .conftest import AGE_POLICY, ATTESTED_POLICY, JSON_V1, NOW

WHEEL = "demo-1.0-py3-none-any.whl"
SAMPLE_WHEEL = "sampleproject-4.0.0-py3-none-any.whl"
UNSIZED = {"Content-Length": ""}  # the body ends when the connection closes
SAMPLE_PROVENANCE = MINI_PYPI / "integrity" / "sampleproject" / "4.0.0" / SAMPLE_WHEEL / "provenance"


@pytest.fixture
def upstream() -> Iterator[ScriptedServer]:
    with scripted_upstream() as server:
        yield server


def _client(upstream: ScriptedServer, policies: Path, cache: Path, **settings: Any) -> FlaskClient:
    app = gate_app(policies, cache_dir=cache, clock=lambda: NOW, upstream=upstream.url("/simple/"), **settings)
    return app.test_client()


@pytest.fixture
def client(upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path) -> FlaskClient:
    return _client(upstream, write_policy(AGE_POLICY), tmp_path / "cache")


def _statuses(client: FlaskClient) -> str:
    return "\n".join(line for line in client.get("/-/metrics").text.splitlines() if "gate_requests_total{" in line)


def _listed(client: FlaskClient, project: str = "demo") -> list[str]:
    response = client.get(f"/simple/{project}/", headers={"Accept": JSON_V1})
    assert response.status_code == 200, response.text
    return [r["filename"] for r in response.get_json(force=True)["files"]]


def test_a_small_file_that_does_not_match_is_a_502_counted_as_one(
    upstream: ScriptedServer, client: FlaskClient
) -> None:
    data = os.urandom(5000)
    upstream.page("demo", [row(upstream.base, WHEEL, data, size=len(data))])
    upstream.route(f"/files/{WHEEL}", Reply(body=data[:-1] + b"x"))
    response = client.get(f"/files/demo/{WHEEL}")
    assert response.status_code == 502 and "do not match the index: sha256" in response.text
    assert 'endpoint="pypi.download",status="502"} 1' in _statuses(client)
    assert 'endpoint="pypi.download",status="200"' not in _statuses(client)


def test_an_upstream_reset_is_a_502_with_the_reason(upstream: ScriptedServer, client: FlaskClient) -> None:
    data = os.urandom(50_000)
    upstream.page("demo", [row(upstream.base, WHEEL, data)])
    upstream.route(f"/files/{WHEEL}", Reply(body=data, reset_after=20_000))
    response = client.get(f"/files/demo/{WHEEL}")
    assert response.status_code == 502 and "upstream broke off" in response.text
    assert 'endpoint="pypi.download",status="502"} 1' in _statuses(client)


def test_a_large_file_that_does_not_match_is_cut_before_its_last_chunk(
    upstream: ScriptedServer, client: FlaskClient
) -> None:
    data = os.urandom(3 << 20)
    upstream.page("demo", [row(upstream.base, WHEEL, data, size=len(data))])
    upstream.route(f"/files/{WHEEL}", Reply(body=data[:-1] + b"x"))
    response = client.get(f"/files/demo/{WHEEL}", buffered=False)  # read below, as a client reads it
    assert response.status_code == 200  # headers are sent before the end of a large body is known
    with pytest.raises(IntegrityError, match="sha256"):
        response.get_data()


@pytest.mark.parametrize("size_on_page", [True, False])
def test_a_gzip_encoded_file_is_checked_by_its_decoded_bytes(
    upstream: ScriptedServer, client: FlaskClient, size_on_page: bool
) -> None:
    data = b"wheel bytes " * 500
    upstream.page("demo", [row(upstream.base, WHEEL, data, size=len(data) if size_on_page else None)])
    upstream.route(f"/files/{WHEEL}", Reply(body=data, gzip=True))
    response = client.get(f"/files/demo/{WHEEL}")
    assert response.status_code == 200, response.text
    assert response.data == data and "Content-Encoding" not in response.headers


def test_files_are_asked_for_uncompressed(upstream: ScriptedServer, client: FlaskClient) -> None:
    data = b"x" * 100
    upstream.page("demo", [row(upstream.base, WHEEL, data)])
    upstream.route(f"/files/{WHEEL}", Reply(body=data))
    assert client.get(f"/files/demo/{WHEEL}").data == data
    assert [h.get("Accept-Encoding") for path, h in upstream.requests if path.startswith("/files/")] == ["identity"]


def test_a_file_of_unknown_size_is_spooled_up_to_the_limit(
    upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path
) -> None:
    small, large = os.urandom(200_000), os.urandom(3 << 20)
    upstream.page("demo", [row(upstream.base, WHEEL, small), row(upstream.base, "demo-2.0-py3-none-any.whl", large)])
    upstream.route(f"/files/{WHEEL}", Reply(body=small, headers=UNSIZED))
    upstream.route("/files/demo-2.0-py3-none-any.whl", Reply(body=large, headers=UNSIZED))
    client = _client(upstream, write_policy(AGE_POLICY), tmp_path / "cache", max_spool=2 << 20)
    ok = client.get(f"/files/demo/{WHEEL}")
    assert ok.status_code == 200 and ok.data == small
    refused = client.get("/files/demo/demo-2.0-py3-none-any.whl")
    assert refused.status_code == 502 and f"more than {2 << 20} bytes" in refused.text


def test_a_spooled_file_is_closed_with_its_response(
    upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    spooled_file = tempfile.SpooledTemporaryFile

    def recording(*args: Any, **kwargs: Any) -> Any:
        opened.append(spool := spooled_file(*args, **kwargs))
        return spool

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", recording)
    data = os.urandom(3 << 20)  # past what is read whole before answering
    upstream.page("demo", [row(upstream.base, WHEEL, data)])
    upstream.route(f"/files/{WHEEL}", Reply(body=data, headers=UNSIZED))
    response = _client(upstream, write_policy(AGE_POLICY), tmp_path / "cache").get(f"/files/demo/{WHEEL}")
    assert response.data == data
    response.close()
    assert len(opened) == 1 and opened[0].closed


def test_tampered_metadata_is_a_502(upstream: ScriptedServer, client: FlaskClient) -> None:
    data, metadata = os.urandom(1000), b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    digest = row(upstream.base, WHEEL, metadata)["hashes"]
    upstream.page("demo", [row(upstream.base, WHEEL, data, **{"core-metadata": digest})])
    upstream.route(f"/files/{WHEEL}.metadata", Reply(body=metadata.replace(b"demo", b"evil")))
    response = client.get(f"/files/demo/{WHEEL}.metadata")
    assert response.status_code == 502 and "do not match the index" in response.text
    upstream.route(f"/files/{WHEEL}.metadata", Reply(body=metadata))
    assert client.get(f"/files/demo/{WHEEL}.metadata").data == metadata


def test_a_filename_listed_twice_with_different_rows_is_denied(upstream: ScriptedServer, client: FlaskClient) -> None:
    good, evil = os.urandom(1000), os.urandom(1000)
    same = row(upstream.base, "demo-0.9-py3-none-any.whl", good)
    upstream.page("demo", [row(upstream.base, WHEEL, good), same, row(upstream.base, WHEEL, evil), dict(same)])
    upstream.route(f"/files/{WHEEL}", Reply(body=good))
    upstream.route("/files/demo-0.9-py3-none-any.whl", Reply(body=good))
    assert _listed(client) == ["demo-0.9-py3-none-any.whl"]  # identical rows are one file, shown once
    refused = client.get(f"/files/demo/{WHEEL}")
    assert refused.status_code == 403 and "lists this filename 2 times with different rows" in refused.text
    assert client.get("/files/demo/demo-0.9-py3-none-any.whl").status_code == 200
    assert upstream.asked(f"/files/{WHEEL}") == 0


def _sample_page(upstream: ScriptedServer, provenance: str) -> None:
    wheel = (MINI_PYPI / "files" / SAMPLE_WHEEL).read_bytes()
    upstream.page("sampleproject", [row(upstream.base, SAMPLE_WHEEL, wheel, provenance=f"{upstream.base}{provenance}")])


def test_a_bad_provenance_answer_does_not_pin_a_denial(
    upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = SAMPLE_PROVENANCE.read_bytes()
    _sample_page(upstream, "/prov/1")
    upstream.route("/prov/1", sequence(Reply(body=b"<html>proxy error</html>"), Reply(body=good)))
    client = _client(upstream, write_policy(ATTESTED_POLICY), tmp_path / "cache")
    assert _listed(client, "sampleproject") == []  # the bad answer does not verify
    with sqlite3.connect(tmp_path / "cache" / "cache.sqlite3") as db:
        (expires,) = db.execute("SELECT expires FROM entries WHERE namespace = 'provenance'").fetchone()
    assert expires is not None and expires <= dt.datetime.now(dt.UTC).timestamp() + FAILURE_TTL + 1
    # the same file with its provenance at another URL: fetched from there, not answered from the cache
    _sample_page(upstream, "/prov/2")
    upstream.route("/prov/2", Reply(body=good))
    assert _listed(client, "sampleproject") == [SAMPLE_WHEEL]
    # and once the bad answer expires, the first URL is asked again
    monkeypatch.setattr(gate.proxy.evidence, "FAILURE_TTL", 0.0)
    _sample_page(upstream, "/prov/3")
    upstream.route("/prov/3", sequence(Reply(body=b"not json"), Reply(body=good)))
    fresh = _client(upstream, write_policy(ATTESTED_POLICY), tmp_path / "cache2")
    assert _listed(fresh, "sampleproject") == []
    assert _listed(fresh, "sampleproject") == [SAMPLE_WHEEL]
    assert upstream.asked("/prov/3") == 2



def test_audit_records_name_the_integrity_problem(
    upstream: ScriptedServer, client: FlaskClient, tmp_path: Path
) -> None:
    data = os.urandom(100)
    upstream.page("demo", [row(upstream.base, WHEEL, data, size=100)])
    upstream.route(f"/files/{WHEEL}", Reply(body=data + b"extra"))
    assert client.get(f"/files/demo/{WHEEL}").status_code == 502
    records = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    (integrity,) = [r for r in records if r["event"] == "integrity"]
    assert "more than the 100 bytes" in integrity["rules"][0]["message"]


@pytest.mark.parametrize(("text", "size"), [("4096", 4096), ("512K", 512 << 10), ("100m", 100 << 20), ("4G", 4 << 30)])
def test_max_spool_size_option(text: str, size: int) -> None:
    assert byte_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "1.5G", "G", "4T"])
def test_max_spool_size_option_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size(text)


@pytest.mark.slow
def test_through_gunicorn_a_mismatch_or_reset_is_a_502_never_a_500(
    upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path
) -> None:
    """gunicorn answers an exception before the first body byte with its own 500 (and gate's counter said
    200): small bodies are checked before answering, so these are gate's 502s, counted as such."""
    tampered, reset, good = os.urandom(5000), os.urandom(50_000), os.urandom(3000)
    names = ["demo-1.0-py3-none-any.whl", "demo-1.1-py3-none-any.whl", "demo-1.2-py3-none-any.whl"]
    upstream.page("demo", [row(upstream.base, names[0], tampered, size=5000), row(upstream.base, names[1], reset),
                           row(upstream.base, names[2], good)])
    upstream.route(f"/files/{names[0]}", Reply(body=tampered[:-1] + b"x"))
    upstream.route(f"/files/{names[1]}", Reply(body=reset, reset_after=10_000))
    upstream.route(f"/files/{names[2]}", Reply(body=good, gzip=True))
    args = ["--policy", str(write_policy(AGE_POLICY)), "--upstream", upstream.url("/simple/"), "--cache-dir",
            str(tmp_path / "cache"), "--workers", "1"]
    with running_gate(args, tmp_path / "serve.log") as url:
        first, second = (requests.get(f"{url}/files/demo/{name}", timeout=60) for name in names[:2])
        third = requests.get(f"{url}/files/demo/{names[2]}", timeout=60)
        metrics = requests.get(f"{url}/-/metrics", timeout=60).text
    assert (first.status_code, second.status_code, third.status_code) == (502, 502, 200)
    assert "sha256" in first.text and "upstream broke off" in second.text and third.content == good
    assert 'gate_requests_total{endpoint="pypi.download",status="502"} 2' in metrics
    assert 'status="500"' not in metrics


def test_a_row_whose_filename_no_path_could_name_is_not_listed(upstream: ScriptedServer, client: FlaskClient) -> None:
    data = os.urandom(100)
    odd = ["demo-1.0-py3-none-any.whl#x", "demo-1.0-py3-none-any.whl?x", "../demo-1.0-py3-none-any.whl"]
    upstream.page("demo", [row(upstream.base, name, data) for name in odd] + [row(upstream.base, WHEEL, data)])
    assert _listed(client) == [WHEEL]


@pytest.mark.slow
def test_pip_installs_a_file_its_upstream_gzip_encodes(
    upstream: ScriptedServer, write_policy: PolicyWriter, tmp_path: Path
) -> None:
    """A real pip through a real `gate serve`: the upstream gives no size and compresses the wheel anyway."""
    wheel = build_wheel(tmp_path / "wheels", "demo", "1.0")
    data = wheel.read_bytes()
    upstream.page("demo", [row(upstream.base, wheel.name, data)])
    upstream.route(f"/files/{wheel.name}", Reply(body=data, gzip=True))
    args = ["--policy", str(write_policy(AGE_POLICY)), "--upstream", upstream.url("/simple/"), "--cache-dir",
            str(tmp_path / "cache"), "--workers", "1"]
    with running_gate(args, tmp_path / "serve.log") as url:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "target"),
             "--index-url", f"{url}/simple/", "demo"],
            capture_output=True, text=True, env=clean_env(tmp_path), timeout=120, check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "target" / "demo-1.0.dist-info").is_dir()


def test_a_page_cut_off_by_a_reset_is_an_upstream_error(upstream: ScriptedServer, client: FlaskClient) -> None:
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": []}).encode()
    upstream.route("/simple/demo/", Reply(body=body, reset_after=10))
    response = client.get("/simple/demo/", headers={"Accept": JSON_V1})
    assert response.status_code in (502, 503) and "upstream" in response.text
    assert response.headers["Cache-Control"] == "no-store"
