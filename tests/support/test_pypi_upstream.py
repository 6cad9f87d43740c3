"""Tests proving the local upstream index is a real, correct PEP 503/691/700/740 server."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.conftest import MINI_PYPI

from .gate_server import VENV_BIN, clean_env
from .pypi_upstream import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    RunningUpstream,
    UpstreamIndex,
    build_wheel,
    byte_range,
    negotiate,
    serve,
    synthetic_project,
    tamper,
)

PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, {TEXT_HTML}; q=0.01"
DEMO_WHEEL = "gate_demo-1.1-py3-none-any.whl"

Completed = subprocess.CompletedProcess[str]
Installer = Callable[..., Completed]


@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    """mini-pypi plus a two-release built project ``gate-demo`` (1.1 needs Python >= 3.9)."""
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path / "upstream")
    index.add_wheel("Gate-Demo", "1.0", upload_time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    index.add_wheel("Gate-Demo", "1.1", requires_python=">=3.9", upload_time=datetime(2025, 2, 1, tzinfo=UTC))
    return index


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session closed after the test."""
    with requests.Session() as session:
        yield session


def get_json(http: requests.Session, url: str) -> dict[str, object]:
    """GET a PEP 691 page and return its parsed body."""
    response = http.get(url, headers={"Accept": JSON_V1})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_V1
    body: dict[str, object] = response.json()
    return body


def file_rows(page: dict[str, object]) -> dict[str, dict[str, object]]:
    """The page's file rows keyed by filename."""
    rows = page["files"]
    assert isinstance(rows, list)
    return {row["filename"]: row for row in rows}


# -- wheels -----------------------------------------------------------------------------------------


def test_build_wheel_is_a_valid_deterministic_wheel(tmp_path: Path) -> None:
    path = build_wheel(tmp_path / "a", "My.Package", "2.0.1", requires_python=">=3.8")
    again = build_wheel(tmp_path / "b", "My.Package", "2.0.1", requires_python=">=3.8")
    assert path.name == "my_package-2.0.1-py3-none-any.whl"
    assert path.read_bytes() == again.read_bytes()
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        metadata = wheel.read("my_package-2.0.1.dist-info/METADATA").decode()
        record = wheel.read("my_package-2.0.1.dist-info/RECORD").decode().splitlines()
        contents = {name: wheel.read(name) for name in names}
    assert "my_package.py" in names
    assert "Requires-Python: >=3.8" in metadata
    assert "Name: My.Package" in metadata
    for line in record:
        member, digest, size = line.rsplit(",", 2)
        if member.endswith("RECORD"):
            assert digest == size == ""
            continue
        data = contents[member]
        assert int(size) == len(data)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}"


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


# -- faults and the request log -------------------------------------------------------------------------


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


# -- real installers ----------------------------------------------------------------------------------


def run_installer(command: list[str], target: Path) -> subprocess.CompletedProcess[str]:
    """Run an installer with :func:`clean_env` (its uv cache next to ``target``)."""
    env = clean_env(target.parent)
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)


def pip_install(upstream: RunningUpstream, target: Path, *requirements: str) -> Completed:
    """``pip install --target`` from the upstream only."""
    command = [str(VENV_BIN / "python"), "-m", "pip", "install", "--no-cache-dir", "--no-input"]
    command += ["--target", str(target), "--index-url", upstream.url]
    return run_installer([*command, *requirements], target)


def uv_install(upstream: RunningUpstream, target: Path, *requirements: str) -> Completed:
    """``uv pip install --target`` from the upstream only."""
    command = [str(VENV_BIN / "uv"), "pip", "install", "--python", str(VENV_BIN / "python")]
    command += ["--target", str(target), "--index-url", upstream.url]
    return run_installer([*command, *requirements], target)


@pytest.mark.slow
@pytest.mark.parametrize("install", [pip_install, uv_install], ids=["pip", "uv"])
def test_installer_installs_built_wheel(
    upstream: RunningUpstream, tmp_path: Path, install: Installer
) -> None:
    result = install(upstream, tmp_path / "target", "gate-demo")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "target" / "gate_demo.py").read_text().endswith('__version__ = "1.1"\n')
    assert "/simple/gate-demo/" in upstream.request_log
    assert f"/files/{DEMO_WHEEL}" in upstream.request_log


@pytest.mark.slow
@pytest.mark.parametrize("install", [pip_install, uv_install], ids=["pip", "uv"])
def test_installer_rejects_tampered_wheel(
    upstream: RunningUpstream, tmp_path: Path, install: Installer
) -> None:
    upstream.tamper_file(DEMO_WHEEL)
    result = install(upstream, tmp_path / "target", "gate-demo")
    assert result.returncode != 0
    assert "hash" in result.stderr.lower()
    assert f"/files/{DEMO_WHEEL}" in upstream.request_log


@pytest.mark.slow
def test_pip_installs_real_fixture_wheel(upstream: RunningUpstream, tmp_path: Path) -> None:
    result = pip_install(upstream, tmp_path / "target", "--no-deps", "sampleproject==4.0.0")
    assert result.returncode == 0, result.stderr
    assert "/files/sampleproject-4.0.0-py3-none-any.whl" in upstream.request_log
