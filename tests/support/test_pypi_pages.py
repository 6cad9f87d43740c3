"""Tests proving the local upstream index is a real, correct PEP 503/691/700/740 server: its pages,
content negotiation, the mini-pypi fixture with its provenance, and synthetic projects."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import MINI_PYPI

from .conftest import DEMO_WHEEL, file_rows, get_json
from .pypi_model import UpstreamIndex, synthetic_project
from .pypi_pages import HTML_V1, JSON_V1, TEXT_HTML, byte_range, negotiate
from .pypi_upstream import RunningUpstream, serve

PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, {TEXT_HTML}; q=0.01"


# -- negotiation and pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PIP_ACCEPT, JSON_V1),
        (f"{JSON_V1}, {HTML_V1};q=0.2, {TEXT_HTML};q=0.01", JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        (HTML_V1, HTML_V1),
        (TEXT_HTML, TEXT_HTML),
        ("*/*", TEXT_HTML),
        (None, TEXT_HTML),
        (f"{JSON_V1};q=0.5, {HTML_V1}", HTML_V1),
        ("application/json", None),
        (f"{JSON_V1};q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_json_detail_page(upstream: RunningUpstream, http: requests.Session, index: UpstreamIndex) -> None:
    response = http.get(upstream.project_url("gate-demo"), headers={"Accept": PIP_ACCEPT})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_V1
    assert response.headers["Vary"] == "Accept"
    page = response.json()
    assert page["meta"]["api-version"] == "1.4"
    assert page["name"] == "gate-demo"
    assert page["versions"] == ["1.0", "1.1"]
    row = file_rows(page)[DEMO_WHEEL]
    assert set(row) >= {"filename", "url", "hashes", "requires-python", "yanked", "upload-time", "size"}
    assert row["url"] == f"{upstream.base}/files/{DEMO_WHEEL}"
    assert row["requires-python"] == ">=3.9"
    assert row["upload-time"] == "2025-02-01T00:00:00Z"
    assert row["yanked"] is False
    assert row["core-metadata"] is False
    assert row["provenance"] is None
    data = http.get(row["url"]).content
    assert row["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert row["size"] == len(data)
    assert file_rows(page)["gate_demo-1.0-py3-none-any.whl"]["upload-time"] == "2025-01-02T03:04:05Z"


@pytest.mark.parametrize("accept", [HTML_V1, TEXT_HTML])
def test_html_detail_page(
    upstream: RunningUpstream, http: requests.Session, index: UpstreamIndex, accept: str
) -> None:
    index.set_yanked("gate-demo", "1.0", "broken <build>")
    response = http.get(upstream.project_url("gate-demo"), headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == accept
    assert response.headers["Vary"] == "Accept"
    text = response.text
    sha = index.files("gate-demo")[-1].sha256
    assert f'href="{upstream.base}/files/{DEMO_WHEEL}#sha256={sha}"' in text
    assert 'data-requires-python="&gt;=3.9"' in text
    assert 'data-yanked="broken &lt;build&gt;"' in text
    assert '<meta name="pypi:repository-version" content="1.4">' in text


def test_format_query_parameter_overrides_accept(upstream: RunningUpstream, http: requests.Session) -> None:
    response = http.get(upstream.project_url("gate-demo") + f"?format={HTML_V1}", headers={"Accept": JSON_V1})
    assert response.headers["Content-Type"] == HTML_V1


def test_unacceptable_accept_is_406(upstream: RunningUpstream, http: requests.Session) -> None:
    response = http.get(upstream.project_url("gate-demo"), headers={"Accept": "application/json"})
    assert response.status_code == 406


def test_yanked_reason_and_versions_in_json(
    upstream: RunningUpstream, http: requests.Session, index: UpstreamIndex
) -> None:
    index.set_yanked("gate-demo", "1.0", "broken")
    rows = file_rows(get_json(http, upstream.project_url("gate-demo")))
    assert rows["gate_demo-1.0-py3-none-any.whl"]["yanked"] == "broken"
    index.set_yanked("gate-demo", "1.0", True)
    rows = file_rows(get_json(http, upstream.project_url("gate-demo")))
    assert rows["gate_demo-1.0-py3-none-any.whl"]["yanked"] is True


def test_root_lists_projects(upstream: RunningUpstream, http: requests.Session) -> None:
    page = get_json(http, upstream.url)
    names = ["gate-demo", "pypi-attestations", "sampleproject"]
    assert page["projects"] == [{"name": name} for name in names]
    html = http.get(upstream.url, headers={"Accept": TEXT_HTML}).text
    assert '<a href="/simple/sampleproject/">sampleproject</a>' in html


def test_etag_and_304(upstream: RunningUpstream, http: requests.Session, index: UpstreamIndex) -> None:
    url = upstream.project_url("gate-demo")
    first = http.get(url, headers={"Accept": JSON_V1})
    etag = first.headers["ETag"]
    html_etag = http.get(url, headers={"Accept": HTML_V1}).headers["ETag"]
    assert etag != html_etag
    again = http.get(url, headers={"Accept": JSON_V1, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    index.add_wheel("gate-demo", "1.2")
    changed = http.get(url, headers={"Accept": JSON_V1, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


@pytest.mark.parametrize("spelling", ["Gate_Demo/", "GATE.demo/", "gate-demo"])
def test_non_normalized_names_redirect(
    upstream: RunningUpstream, http: requests.Session, spelling: str
) -> None:
    response = http.get(upstream.url + spelling, allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == "/simple/gate-demo/"
    followed = http.get(upstream.url + spelling, headers={"Accept": JSON_V1})
    assert followed.json()["name"] == "gate-demo"


def test_unknown_project_and_file_are_404(upstream: RunningUpstream, http: requests.Session) -> None:
    assert http.get(upstream.project_url("no-such-thing")).status_code == 404
    assert http.get(upstream.file_url("nope-1.0.tar.gz")).status_code == 404
    assert http.get(f"{upstream.base}/elsewhere").status_code == 404


def test_range_requests(upstream: RunningUpstream, http: requests.Session, index: UpstreamIndex) -> None:
    data = http.get(upstream.file_url(DEMO_WHEEL)).content
    tail = http.get(upstream.file_url(DEMO_WHEEL), headers={"Range": "bytes=-22"})
    assert tail.status_code == 206
    assert tail.content == data[-22:]
    assert tail.headers["Content-Range"] == f"bytes {len(data) - 22}-{len(data) - 1}/{len(data)}"
    assert byte_range("bytes=5-", 10) == (5, 9)
    assert byte_range("bytes=8-100", 10) == (8, 9)
    assert byte_range("bytes=10-", 10) is None
    assert byte_range("items=0-1", 10) is None


# -- mini-pypi and provenance -------------------------------------------------------------------------


def test_mini_pypi_provenance_is_served_locally(upstream: RunningUpstream, http: requests.Session) -> None:
    page = http.get(upstream.project_url("sampleproject"), headers={"Accept": JSON_V1})
    assert "pypi.org" not in page.text
    assert "pythonhosted" not in page.text
    rows = file_rows(page.json())
    assert page.json()["versions"] == ["3.0.0", "4.0.0"]
    for filename in ("sampleproject-4.0.0-py3-none-any.whl", "sampleproject-4.0.0.tar.gz"):
        url = rows[filename]["provenance"]
        assert url == f"{upstream.base}/integrity/sampleproject/4.0.0/{filename}/provenance"
        response = http.get(url)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        fixture = MINI_PYPI / "integrity/sampleproject/4.0.0" / filename / "provenance"
        assert response.content == fixture.read_bytes()
        provenance = response.json()
        assert provenance["version"] == 1
        assert provenance["attestation_bundles"][0]["publisher"]["repository"] == "pypa/sampleproject"
    assert rows["sampleproject-3.0.0.tar.gz"]["provenance"] is None
    missing = f"{upstream.base}/integrity/sampleproject/3.0.0/sampleproject-3.0.0.tar.gz/provenance"
    assert http.get(missing).status_code == 404
    wrong_version = f"{upstream.base}/integrity/sampleproject/3.0.0/sampleproject-4.0.0.tar.gz/provenance"
    assert http.get(wrong_version).status_code == 404


def test_mini_pypi_html_carries_provenance(upstream: RunningUpstream, http: requests.Session) -> None:
    text = http.get(upstream.project_url("sampleproject"), headers={"Accept": HTML_V1}).text
    url = f"{upstream.base}/integrity/sampleproject/4.0.0/sampleproject-4.0.0.tar.gz/provenance"
    assert f'data-provenance="{url}"' in text
    assert "pypi.org" not in text


def test_mini_pypi_files_match_promised_hashes(upstream: RunningUpstream, http: requests.Session) -> None:
    rows = file_rows(get_json(http, upstream.project_url("pypi-attestations")))
    assert set(rows) == {"pypi_attestations-0.0.16.tar.gz", "pypi_attestations-0.0.19.tar.gz"}
    for row in rows.values():
        data = http.get(str(row["url"])).content
        assert row["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
        assert row["upload-time"] is not None


def test_mini_pypi_can_include_rows_without_bytes() -> None:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, include_missing=True)
    names = {f.filename for f in index.files("sampleproject")}
    assert "sampleproject-3.0.0-py3-none-any.whl" in names
    with serve(index) as upstream, requests.Session() as http:
        assert http.get(upstream.file_url("sampleproject-3.0.0-py3-none-any.whl")).status_code == 404


# -- synthetic projects -------------------------------------------------------------------------------


def test_synthetic_project_is_served(http: requests.Session) -> None:
    index = UpstreamIndex()
    start = datetime(2021, 1, 1, tzinfo=UTC)
    files = synthetic_project(index, "Big_Project", versions=1000, files_per_version=4, start=start)
    assert len(files) == 4000
    assert len({f.filename for f in files}) == 4000
    with serve(index) as upstream:
        page = get_json(http, upstream.project_url("big-project"))
        versions = page["versions"]
        assert isinstance(versions, list)
        assert len(versions) == 1000
        rows = list(file_rows(page).values())
        assert len(rows) == 4000
        assert all(row["provenance"] is None for row in rows)
        assert rows[0]["upload-time"] == "2021-01-01T00:00:00Z"
        assert rows[-1]["upload-time"] == (start + timedelta(days=999)).strftime("%Y-%m-%dT%H:%M:%SZ")
        blob = http.get(str(rows[5]["url"])).content
        assert rows[5]["hashes"] == {"sha256": hashlib.sha256(blob).hexdigest()}


