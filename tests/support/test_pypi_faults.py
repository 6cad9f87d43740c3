"""Tests of the local upstream index's fault knobs (failing, hanging, malformed, tampered) and request log."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile

import pytest
import requests

from tests.conftest import MINI_PYPI

from .conftest import DEMO_WHEEL, file_rows, get_json
from .pypi_model import UpstreamIndex
from .pypi_pages import JSON_V1
from .pypi_upstream import RunningUpstream, serve
from .pypi_wheels import tamper


def test_fail_project(upstream: RunningUpstream, http: requests.Session) -> None:
    upstream.fail_project("Gate_Demo")
    assert http.get(upstream.project_url("gate-demo")).status_code == 500
    upstream.fail_project("gate-demo", 503)
    assert http.get(upstream.project_url("gate-demo")).status_code == 503
    assert http.get(upstream.project_url("sampleproject")).status_code == 200
    upstream.clear_faults()
    assert http.get(upstream.project_url("gate-demo")).status_code == 200


def test_hang_project(upstream: RunningUpstream, http: requests.Session) -> None:
    upstream.hang_project("gate-demo", 0.3)
    with pytest.raises(requests.Timeout):  # nothing arrives while it hangs...
        http.get(upstream.project_url("gate-demo"), timeout=0.05)
    assert http.get(upstream.project_url("gate-demo")).status_code == 200  # ...then the page does
    upstream.hang_project("gate-demo", 30)
    with pytest.raises(requests.Timeout):
        http.get(upstream.project_url("gate-demo"), timeout=0.2)


def test_hung_request_does_not_block_shutdown(index: UpstreamIndex) -> None:
    """Leaving `serve` returns while a request still hangs (for 600 s): its handler does not hold the exit."""
    before = set(threading.enumerate())
    with serve(index) as upstream, requests.Session() as http:
        upstream.hang_project("gate-demo", 600)
        with pytest.raises(requests.Timeout):
            http.get(upstream.project_url("gate-demo"), timeout=0.2)
    hanging = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert all(t.daemon for t in hanging), hanging  # what still runs cannot keep the process alive


def test_malformed_json(upstream: RunningUpstream, http: requests.Session) -> None:
    upstream.malform_project("gate-demo")
    response = http.get(upstream.project_url("gate-demo"), headers={"Accept": JSON_V1})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_V1
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_tampered_file(upstream: RunningUpstream, http: requests.Session, index: UpstreamIndex) -> None:
    promised = index.files("gate-demo")[-1]
    body = upstream.tamper_file(DEMO_WHEEL)
    served = http.get(upstream.file_url(DEMO_WHEEL)).content
    assert served == body
    assert hashlib.sha256(served).hexdigest() != promised.sha256
    with zipfile.ZipFile(io.BytesIO(served)) as wheel:
        assert wheel.testzip() is None
    page_row = file_rows(get_json(http, upstream.project_url("gate-demo")))[DEMO_WHEEL]
    assert page_row["hashes"] == {"sha256": promised.sha256}
    upstream.tamper_file(DEMO_WHEEL, b"evil")
    assert http.get(upstream.file_url(DEMO_WHEEL)).content == b"evil"
    with pytest.raises(KeyError):
        upstream.tamper_file("unknown-1.0.tar.gz")


def test_tamper_keeps_archives_valid_and_size_for_gzip() -> None:
    sdist = (MINI_PYPI / "files/sampleproject-4.0.0.tar.gz").read_bytes()
    changed = tamper(sdist)
    assert len(changed) == len(sdist)
    assert changed != sdist
    assert tamper(b"abc") == b"ab\x9c"


def test_request_log(upstream: RunningUpstream, http: requests.Session) -> None:
    http.get(upstream.project_url("gate-demo"), headers={"Accept": JSON_V1})
    http.get(upstream.file_url(DEMO_WHEEL))
    assert upstream.request_log == ["/simple/gate-demo/", f"/files/{DEMO_WHEEL}"]
    assert upstream.requests[0].headers["Accept"] == JSON_V1
    upstream.clear_log()
    assert upstream.request_log == []


