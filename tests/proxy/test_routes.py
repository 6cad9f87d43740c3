"""The PyPI blueprint through Flask's test client, against a real loopback upstream."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from flask.testing import FlaskClient

import gate.sources.pypi
from gate.gather.pypi import NO_PROVENANCE_TTL
from gate.verify.target import default_trusted_root_path
from tests.conftest import PolicyWriter
from tests.support.pypi_upstream import RunningUpstream

from .conftest import (
    AGE_POLICY,
    ATTESTED_POLICY,
    AUDIT_POLICY,
    HTML_V1,
    JSON_V1,
    NOW,
    PIP_ACCEPT,
    AppFactory,
)

SAMPLE_WHEEL = "sampleproject-4.0.0-py3-none-any.whl"
STAGING_ROOT = default_trusted_root_path().parents[1] / "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev" / "trusted_root.json"


def page(client: FlaskClient, project: str = "demo", accept: str = JSON_V1) -> dict[str, Any]:
    response = client.get(f"/simple/{project}/", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.get_json(force=True)
    return body


def filenames(body: dict[str, Any]) -> list[str]:
    return [row["filename"] for row in body["files"]]


def test_json_page_lists_only_allowed_files_with_metadata_passed_through(client: FlaskClient) -> None:
    response = client.get("/simple/demo/", headers={"Accept": PIP_ACCEPT})
    assert response.headers["Content-Type"] == JSON_V1
    assert "Accept" in response.headers["Vary"]
    body = response.get_json(force=True)
    assert filenames(body) == ["demo-1.0-py3-none-any.whl", "demo-1.1-py3-none-any.whl"]
    assert body["versions"] == ["1.0", "1.1"]
    assert body["meta"]["api-version"].startswith("1.")
    old, yanked = body["files"]
    assert old["url"] == "http://localhost/files/demo/demo-1.0-py3-none-any.whl"
    assert old["upload-time"] == "2026-09-02T00:00:00Z"
    assert len(old["hashes"]["sha256"]) == 64 and old["size"] > 0
    assert yanked["yanked"] == "broken"


def test_html_page_carries_hash_yank_and_upload_time(client: FlaskClient) -> None:
    response = client.get("/simple/demo/", headers={"Accept": "text/html"})
    assert response.headers["Content-Type"].startswith("text/html")
    text = response.text
    assert "demo-2.0" not in text
    assert 'href="http://localhost/files/demo/demo-1.0-py3-none-any.whl#sha256=' in text
    assert 'data-yanked="broken"' in text
    assert 'data-upload-time="2026-09-02T00:00:00Z"' in text
    assert client.get("/simple/demo/", headers={"Accept": HTML_V1}).headers["Content-Type"] == HTML_V1


@pytest.mark.parametrize(
    ("accept", "query", "expected"),
    [
        (None, "", "text/html"),
        ("application/vnd.pypi.simple.latest+json", "", JSON_V1),
        (f"{JSON_V1};q=0.5, text/html", "", "text/html"),
        ("*/*", "", JSON_V1),
        ("text/html", f"?format={JSON_V1}", JSON_V1),
    ],
)
def test_content_negotiation(client: FlaskClient, accept: str | None, query: str, expected: str) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get(f"/simple/demo/{query}", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == expected


def test_unacceptable_format_is_406(client: FlaskClient) -> None:
    assert client.get("/simple/demo/", headers={"Accept": "application/xml"}).status_code == 406


def test_non_normalized_name_redirects(client: FlaskClient) -> None:
    response = client.get("/simple/Demo_Project/?x=1")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/simple/demo-project/?x=1")


def test_root_lists_upstream_projects(client: FlaskClient) -> None:
    body = client.get("/simple/", headers={"Accept": JSON_V1}).get_json(force=True)
    assert {"name": "demo"} in body["projects"] and {"name": "sampleproject"} in body["projects"]


def test_denied_file_is_refused_with_reasons(client: FlaskClient) -> None:
    response = client.get("/files/demo/demo-2.0-py3-none-any.whl")
    assert response.status_code == 403
    assert response.mimetype == "text/plain"
    assert "demo-2.0-py3-none-any.whl (demo 2.0) is denied" in response.text
    assert "age/minimumAge: uploaded 2026-10-30T00:00:00Z; allowed from 2026-11-06T00:00:00Z (minimum age 7d)" in (
        response.text
    )


def test_allowed_file_is_streamed_with_its_hash(client: FlaskClient, upstream: RunningUpstream) -> None:
    response = client.get("/files/demo/demo-1.0-py3-none-any.whl")
    assert response.status_code == 200
    file = upstream.index.get_file("demo-1.0-py3-none-any.whl")
    assert file is not None and response.data == file.read_bytes()
    assert client.head("/files/demo/demo-1.0-py3-none-any.whl").headers["Content-Length"] == str(file.size)
    assert client.get("/files/demo/demo-9.9-py3-none-any.whl").status_code == 404


def test_tampered_file_is_never_delivered(client: FlaskClient, upstream: RunningUpstream, tmp_path: Path) -> None:
    upstream.tamper_file("demo-1.0-py3-none-any.whl")
    response = client.get("/files/demo/demo-1.0-py3-none-any.whl")  # a small file: checked before answering
    assert response.status_code == 502 and "do not match the index: sha256" in response.text
    assert 'endpoint="pypi.download",status="502"' in client.get("/-/metrics").text
    audit = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    assert any(r["event"] == "integrity" and not r["served"] for r in audit)


def test_age_decision_expires_when_the_file_comes_of_age(
    make_app: AppFactory, write_policy: PolicyWriter
) -> None:
    clock = {"now": NOW}
    client = make_app(write_policy(AGE_POLICY), clock=lambda: clock["now"]).test_client()
    assert "demo-2.0-py3-none-any.whl" not in filenames(page(client))
    clock["now"] = NOW + dt.timedelta(days=5, seconds=1)  # 2.0 is now 7 days and 1 s old
    assert "demo-2.0-py3-none-any.whl" in filenames(page(client))


def test_audit_mode_keeps_files_visible_and_logs(
    make_app: AppFactory, write_policy: PolicyWriter, tmp_path: Path
) -> None:
    client = make_app(write_policy(AUDIT_POLICY)).test_client()
    assert "demo-2.0-py3-none-any.whl" in filenames(page(client))
    assert client.get("/files/demo/demo-2.0-py3-none-any.whl").status_code == 200
    audit = [json.loads(line) for line in (tmp_path / "cache" / "audit.jsonl").read_text().splitlines()]
    flagged = [r for r in audit if r["file"] == "demo-2.0-py3-none-any.whl"]
    assert {r["event"] for r in flagged} == {"page", "download"}
    assert all(r["verdict"] == "allow" and r["rules"][0]["rule"] == "minimumAge" for r in flagged)
    assert {"time", "client", "project", "file", "verdict", "rules"} <= set(flagged[0])


def test_attestation_policy_admits_real_provenance_only(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream
) -> None:
    client = make_app(write_policy(ATTESTED_POLICY)).test_client()
    body = page(client, "sampleproject")
    assert filenames(body) == ["sampleproject-4.0.0-py3-none-any.whl", "sampleproject-4.0.0.tar.gz"]
    assert body["files"][0]["provenance"] == (
        "http://localhost/provenance/sampleproject/sampleproject-4.0.0-py3-none-any.whl"
    )
    provenance = client.get("/provenance/sampleproject/sampleproject-4.0.0-py3-none-any.whl")
    assert provenance.status_code == 200 and "attestation_bundles" in provenance.get_json(force=True)
    refused = client.get("/files/sampleproject/sampleproject-3.0.0.tar.gz")  # the index has no provenance for it
    assert refused.status_code == 403 and "attested/attestations.required: no attestation\n" in refused.text
    upstream.clear_log()
    html = client.get("/simple/sampleproject/", headers={"Accept": "text/html"})  # a new rendering, same cache
    assert html.status_code == 200 and "sampleproject-3.0.0" not in html.text
    assert not [p for p in upstream.request_log if "/integrity/" in p]


def test_rendered_page_is_cached_and_revalidated(client: FlaskClient, upstream: RunningUpstream) -> None:
    first = client.get("/simple/demo/", headers={"Accept": JSON_V1, "Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(first.data))["name"] == "demo"
    upstream_etag = requests.get(upstream.project_url("demo"), headers={"Accept": JSON_V1}, timeout=5).headers["ETag"]
    upstream.clear_log()
    again = client.get("/simple/demo/", headers={"Accept": JSON_V1, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    revalidations = [(r.path, r.headers.get("If-None-Match")) for r in upstream.requests]
    assert revalidations == [("/simple/demo/", upstream_etag)]  # one conditional request, with the page's ETag
    for tags in (f'"other", {first.headers["ETag"]}', "*"):
        assert client.get("/simple/demo/", headers={"Accept": JSON_V1, "If-None-Match": tags}).status_code == 304
    changed = '"' + first.headers["ETag"].strip('"')[:-1] + '"'
    assert client.get("/simple/demo/", headers={"Accept": JSON_V1, "If-None-Match": changed}).status_code == 200
    upstream.set_cache_control("max-age=600")
    page(client)
    upstream.clear_log()
    page(client)
    assert upstream.request_log == []  # fresh per Cache-Control: upstream not asked


def test_upstream_change_is_seen(client: FlaskClient, upstream: RunningUpstream) -> None:
    assert "demo-0.5-py3-none-any.whl" not in filenames(page(client))
    upstream.index.add_wheel("demo", "0.5", upload_time=NOW - dt.timedelta(days=90))
    assert "demo-0.5-py3-none-any.whl" in filenames(page(client))


@pytest.mark.parametrize(
    ("fault", "status"),
    [("down", 503), ("500", 502), ("timeout", 503), ("malformed", 502), ("missing", 404)],
)
def test_upstream_faults_never_give_an_unfiltered_page(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream, fault: str, status: int
) -> None:
    client = make_app(write_policy(AGE_POLICY), timeout=0.3).test_client()  # the hang outlasts the timeout
    project = "demo"
    if fault == "500":
        upstream.fail_project(project, 500)
    elif fault == "timeout":
        upstream.hang_project(project, 5)
    elif fault == "malformed":
        upstream.malform_project(project)
    elif fault == "missing":
        project = "no-such-project"
    else:
        upstream._server.stop()
    response = client.get(f"/simple/{project}/", headers={"Accept": JSON_V1})
    assert response.status_code == status
    assert response.mimetype == "text/plain" and response.text.startswith("gate: ")
    assert client.get(f"/files/{project}/demo-2.0-py3-none-any.whl").status_code == status


def test_health_and_metrics(client: FlaskClient) -> None:
    assert client.get("/-/health").get_json()["status"] == "ok"
    page(client)
    client.get("/files/demo/demo-2.0-py3-none-any.whl")
    text = client.get("/-/metrics").text
    assert 'gate_requests_total{endpoint="pypi.project_page",status="200"} 1' in text
    assert 'gate_decisions_total{event="page",verdict="deny"} 1' in text
    assert 'gate_rule_violations_total{policy="age",rule="minimumAge"} 2' in text
    assert "gate_upstream_seconds_count" in text


def _rendered_expiries(cache_dir: Path) -> list[float | None]:
    with sqlite3.connect(cache_dir / "cache.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT expires FROM entries WHERE namespace = 'pypi.rendered'")]


def test_a_provenance_outage_hides_a_file_only_briefly(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream
) -> None:
    clock = {"now": NOW}
    client = make_app(write_policy(ATTESTED_POLICY), clock=lambda: clock["now"]).test_client()
    upstream.fail_provenance(SAMPLE_WHEEL, 503)
    assert SAMPLE_WHEEL not in filenames(page(client, "sampleproject"))  # unverifiable for now: hidden
    upstream.clear_faults()
    clock["now"] = NOW + dt.timedelta(seconds=30)
    assert SAMPLE_WHEEL not in filenames(page(client, "sampleproject"))  # the page is still reused a while
    clock["now"] = NOW + dt.timedelta(seconds=61)
    assert SAMPLE_WHEEL in filenames(page(client, "sampleproject"))  # then the provenance is asked for again


def test_a_page_with_absent_provenance_expires_with_it(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path
) -> None:
    client = make_app(write_policy(ATTESTED_POLICY)).test_client()
    upstream.fail_provenance(SAMPLE_WHEEL, 404)  # listed with a provenance URL, but none there (yet)
    assert SAMPLE_WHEEL not in filenames(page(client, "sampleproject"))
    (expires,) = _rendered_expiries(tmp_path / "cache")
    assert expires is not None and abs(expires - (NOW.timestamp() + NO_PROVENANCE_TTL)) < 30


def test_provenance_is_fetched_only_for_projects_an_attestation_policy_covers(
    make_app: AppFactory, write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path
) -> None:
    provenance = tmp_path / "demo.provenance"
    provenance.write_text("{}")
    upstream.index.add_wheel("demo", "0.9", upload_time=NOW - dt.timedelta(days=90), provenance=provenance)
    client = make_app(write_policy(AGE_POLICY, ATTESTED_POLICY)).test_client()
    assert "demo-0.9-py3-none-any.whl" in filenames(page(client))
    assert client.get("/files/demo/demo-0.9-py3-none-any.whl").status_code == 200
    assert not [p for p in upstream.request_log if "/integrity/" in p]  # no policy reads demo's evidence
    assert SAMPLE_WHEEL in filenames(page(client, "sampleproject"))
    assert [p for p in upstream.request_log if "/integrity/" in p]  # sampleproject's is read


def test_a_download_asks_upstream_for_the_page_once(client: FlaskClient, upstream: RunningUpstream) -> None:
    upstream.clear_log()
    assert client.get("/files/demo/demo-1.0-py3-none-any.whl").status_code == 200
    assert [p for p in upstream.request_log if p.startswith("/simple/")] == ["/simple/demo/"]


def test_root_is_served_when_the_store_drops_writes(
    make_app: AppFactory, write_policy: PolicyWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(write_policy(AGE_POLICY))
    monkeypatch.setattr(app.extensions["gate"].store, "put", lambda *args, **kwargs: None)  # a write dropped
    response = app.test_client().get("/simple/", headers={"Accept": JSON_V1})
    assert response.status_code == 200 and {"name": "demo"} in response.get_json(force=True)["projects"]


@pytest.mark.parametrize("route", ["files", "provenance"])
@pytest.mark.parametrize(
    ("filename", "encoded"),
    [("demo-{1}-py3-none-any.whl", "demo-%7B1%7D-py3-none-any.whl"), ("demo-1 x.whl", "demo-1%20x.whl"),
     ("demo-1+x;y.whl", "demo-1%2Bx%3By.whl")],
)  # names with `?`, `#`, `%` are refused before any redirect: tests/proxy/test_paths.py
def test_odd_filenames_redirect_to_themselves(client: FlaskClient, route: str, filename: str, encoded: str) -> None:
    response = client.get(f"/{route}/Demo/{quote(filename)}?x=1")
    assert response.status_code == 301
    location = response.headers["Location"]
    assert location.endswith(f"/{route}/demo/{encoded}?x=1")
    followed = client.get(urlsplit(location).path)  # the redirect reaches the same file under the normalized name
    assert followed.status_code == 404 and filename in followed.get_data(as_text=True)


def test_another_trusted_root_never_reuses_cached_decisions(make_app: AppFactory, write_policy: PolicyWriter) -> None:
    policy = write_policy(ATTESTED_POLICY)
    assert SAMPLE_WHEEL in filenames(page(make_app(policy).test_client(), "sampleproject"))
    staging = make_app(policy, trusted_root=STAGING_ROOT).test_client()  # the same cache directory
    assert SAMPLE_WHEEL not in filenames(page(staging, "sampleproject"))  # production bundles do not verify
    refused = staging.get(f"/files/sampleproject/{SAMPLE_WHEEL}")
    assert refused.status_code == 403 and "no verified attestation" in refused.text


def test_provenance_larger_than_the_cap_is_not_read(
    make_app: AppFactory, write_policy: PolicyWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate.sources.pypi, "MAX_PROVENANCE_BYTES", 100)
    client = make_app(write_policy(ATTESTED_POLICY)).test_client()
    assert SAMPLE_WHEEL not in filenames(page(client, "sampleproject"))
    response = client.get(f"/files/sampleproject/{SAMPLE_WHEEL}")
    assert response.status_code == 403 and "no verified attestation" in response.text, response.text
    # evidence is served only for a file gate would serve (as conda sidecars are)
    assert client.get(f"/provenance/sampleproject/{SAMPLE_WHEEL}").status_code == 403
