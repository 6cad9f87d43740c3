"""The proxy's OSV data: reloaded when its files change (never a moment with nothing loaded; a failed reload keeps
the old data, logged and counted), its age in /-/health and /-/metrics, `--osv-max-age` failing closed (503), and
pages cached under older data not served. The loader is the FAKE from tests.support.osv_fake (records by the
`<ID>.json` names in a directory), put in place of `OsvDatabase.load`; a load failure is exit 2 for every command.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gate.cli import main
from gate.facts import Ecosystem
from gate.proxy.osv_data import OsvData
from gate.proxy.server import Gunicorn, check_settings
from gate.proxy.settings import Settings
from gate.proxy.state import EXTENSION
from gate.sources.osv import OsvDatabase, OsvError
from tests.conftest import PolicyWriter
from tests.proxy.conftest import AGE_POLICY, JSON_V1
from tests.support.gate_app import gate_app
from tests.support.osv_fake import MANIFEST, OSV, FakeOsvDatabase
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream

POLICY = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: osv}\nspec:\n  vulnerabilities: {maxSeverity: none}\n"
REQUESTS_RECORD = "GHSA-9wx4-h78v-vm56"  # requests < 2.32.0, modified 2024-05-20
URLLIB3_RECORD = "GHSA-34jh-p97f-mpxf"  # modified 2024-06-17
NOW = dt.datetime(2024, 6, 20, tzinfo=dt.UTC)  # three days after the newest record above


def _record_file(record_id: str) -> Path:
    (entry,) = [r for r in MANIFEST["records"] if r["id"] == record_id]
    path: Path = OSV / entry["file"]
    return path


@pytest.fixture(autouse=True)
def fake_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OsvDatabase, "load", classmethod(lambda cls, paths: FakeOsvDatabase.from_directories(paths)))


@pytest.fixture
def index(tmp_path: Path) -> UpstreamIndex:
    index = UpstreamIndex(work_dir=tmp_path / "upstream")
    for version in ("2.30.0", "2.31.0", "2.32.4"):
        index.add_file(OSV / "dists" / f"requests-{version}-py3-none-any.whl", upload_time=NOW - dt.timedelta(days=400))
    return index


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """A directory of OSV records holding only the urllib3 one (nothing applies to requests yet)."""
    directory = tmp_path / "osv"
    directory.mkdir()
    shutil.copy(_record_file(URLLIB3_RECORD), directory)
    return directory


def _client(write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path, records: Path,
            clock: list[dt.datetime], **settings: Any) -> FlaskClient:
    app = gate_app(write_policy(POLICY), cache_dir=tmp_path / "cache", clock=lambda: clock[0],
                   upstream=upstream.url, osv=(records,), osv_interval=0.0, **settings)
    return app.test_client()


def _listed(client: FlaskClient) -> list[str]:
    page = client.get("/simple/requests/", headers={"Accept": JSON_V1})
    assert page.status_code == 200, page.get_data()
    return [row["filename"] for row in page.get_json()["files"]]


def test_new_records_are_loaded_and_cached_pages_of_older_data_are_not_served(
    write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path, records: Path
) -> None:
    clock = [NOW]
    client = _client(write_policy, upstream, tmp_path, records, clock)
    assert len(_listed(client)) == 3
    assert len(_listed(client)) == 3  # served from the rendered-page cache
    shutil.copy(_record_file(REQUESTS_RECORD), records)
    assert _listed(client) == ["requests-2.32.4-py3-none-any.whl"]  # reloaded: the cached page is not served
    refused = client.get("/files/requests/requests-2.31.0-py3-none-any.whl")
    assert refused.status_code == 403 and "GHSA-9wx4-h78v-vm56 (medium" in refused.get_data(as_text=True)
    assert "fixed in 2.32.0" in refused.get_data(as_text=True)
    assert 'gate_osv_reloads_total{outcome="ok"} 1' in client.get("/-/metrics").get_data(as_text=True)


def test_a_failed_reload_keeps_the_old_data_and_is_reported(
    write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path, records: Path
) -> None:
    shutil.copy(_record_file(REQUESTS_RECORD), records)
    clock = [NOW]
    client = _client(write_policy, upstream, tmp_path, records, clock)
    assert _listed(client) == ["requests-2.32.4-py3-none-any.whl"]
    (records / "GHSA-broken.json").write_text("{not json")
    assert _listed(client) == ["requests-2.32.4-py3-none-any.whl"]  # the old data still decides
    assert client.get("/files/requests/requests-2.30.0-py3-none-any.whl").status_code == 403
    health = client.get("/-/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded" and body["osv"]["reload_failures"] >= 1
    assert "GHSA-broken.json: not JSON" in body["osv"]["reload_error"]
    assert 'gate_osv_reloads_total{outcome="failed"}' in client.get("/-/metrics").get_data(as_text=True)


def test_health_and_metrics_give_the_data_age(
    write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path, records: Path
) -> None:
    client = _client(write_policy, upstream, tmp_path, records, [NOW])
    body = client.get("/-/health").get_json()
    newest = dt.datetime(2024, 6, 17, 21, 37, 20, tzinfo=dt.UTC)
    assert body["status"] == "ok"
    assert body["osv"]["newest_modified"] == "2024-06-17T21:37:20Z"
    assert body["osv"]["age_seconds"] == int((NOW - newest).total_seconds())
    assert body["osv"]["sources"] == [str(records)] and body["osv"]["stale"] is False
    metrics = client.get("/-/metrics").get_data(as_text=True)
    assert f"gate_osv_age_seconds {int((NOW - newest).total_seconds())}" in metrics
    assert "gate_osv_loaded_age_seconds " in metrics


@pytest.mark.parametrize("cache_control", ["max-age=0, must-revalidate", "max-age=600, public"])
def test_stale_data_under_osv_max_age_fails_closed(
    write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path, records: Path, cache_control: str
) -> None:
    upstream.set_cache_control(cache_control)  # with max-age the page is warm (pypi_warm) when the data goes stale
    clock = [NOW]
    client = _client(write_policy, upstream, tmp_path, records, clock, osv_max_age=dt.timedelta(days=7))
    assert len(_listed(client)) == 3
    assert len(_listed(client)) == 3
    clock[0] = NOW + dt.timedelta(days=5)  # the newest record is now eight days old
    page = client.get("/simple/requests/", headers={"Accept": JSON_V1})
    assert page.status_code == 503 and "stale" in page.get_data(as_text=True)
    assert client.get("/files/requests/requests-2.32.4-py3-none-any.whl").status_code == 503
    health = client.get("/-/health")
    assert health.status_code == 503 and health.get_json()["status"] == "failing"
    shutil.copy(_record_file(REQUESTS_RECORD), records)  # newer data does not help: still 2024-06-17
    assert client.get("/simple/requests/", headers={"Accept": JSON_V1}).status_code == 503


def test_without_max_age_old_data_is_a_warning_only(
    write_policy: PolicyWriter, upstream: RunningUpstream, tmp_path: Path, records: Path
) -> None:
    client = _client(write_policy, upstream, tmp_path, records, [NOW + dt.timedelta(days=400)])
    assert len(_listed(client)) == 3
    assert client.get("/-/health").get_json()["status"] == "degraded"


def test_a_reload_swaps_in_complete_data_and_lookups_never_wait_for_it(tmp_path: Path, records: Path) -> None:
    """While the new set loads, lookups answer from the old one; then from the new one, whole."""
    started, release = threading.Event(), threading.Event()
    loads = [0]

    def slow_load(paths: tuple[Path, ...]) -> Any:  # the FAKE in place of an OsvDatabase
        loads[0] += 1
        if loads[0] > 1:
            started.set()
            assert release.wait(30)
        return FakeOsvDatabase.from_directories(list(paths))

    data = OsvData((records,), interval=0.0, load=slow_load)
    assert data.lookup(Ecosystem.PYPI, "requests", "2.31.0") == ()
    shutil.copy(_record_file(REQUESTS_RECORD), records)
    reloading = threading.Thread(target=data.reload)
    reloading.start()
    assert started.wait(30)
    assert data.lookup(Ecosystem.PYPI, "requests", "2.31.0") == ()  # the old data, not nothing, not half
    assert [r.id for r in data.lookup(Ecosystem.PYPI, "urllib3", "2.2.1")] == [URLLIB3_RECORD]
    release.set()
    reloading.join(30)
    assert [r.id for r in data.lookup(Ecosystem.PYPI, "requests", "2.31.0")] == [REQUESTS_RECORD]
    assert not data.reload()  # unchanged files: nothing is loaded again
    assert loads[0] == 2


def _failing(cls: type, paths: list[Path]) -> FakeOsvDatabase:
    raise OsvError([f"{paths[0]}/GHSA-1.json: affected[0].ranges[0].type: expected a string",
                    f"{paths[0]}/GHSA-2.json: not JSON"])


@pytest.mark.parametrize("command", ["check", "serve", "explain"])
def test_a_load_failure_is_exit_2_with_every_problem(
    command: str, monkeypatch: pytest.MonkeyPatch, write_policy: PolicyWriter, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(OsvDatabase, "load", classmethod(_failing))
    target = {"check": [str(OSV / "dists" / "py-1.11.0-py2.py3-none-any.whl")], "serve": [],
              "explain": ["requests", "--index-url", "http://127.0.0.1:9/simple/"]}[command]
    code = main([command, *target, "-p", str(write_policy(POLICY)), "--osv", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "GHSA-1.json: affected[0].ranges[0].type" in err and "GHSA-2.json: not JSON" in err


def test_gate_osv_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"GATE_POLICY": "p", "GATE_OSV": f"{tmp_path / 'a'}:{tmp_path / 'b.zip'}",
                                  "GATE_OSV_MAX_AGE": "2d", "GATE_OSV_INTERVAL": "5"})
    assert settings.osv == (tmp_path / "a", tmp_path / "b.zip")
    assert settings.osv_max_age == dt.timedelta(days=2) and settings.osv_interval == 5.0
    with pytest.raises(ValueError, match="duration"):
        Settings.from_env({"GATE_POLICY": "p", "GATE_OSV_MAX_AGE": "soon"})


def test_a_failed_reload_is_not_retried_until_the_files_change_and_a_shrunken_set_is_refused(
    tmp_path: Path,
) -> None:
    """Found in review: a bad file was loaded again at every interval inside a request; a load that lost
    most records (a download cut short) replaced the data."""
    calls: list[int] = []

    def load(paths: tuple[Path, ...]) -> FakeOsvDatabase:
        calls.append(1)
        text = (paths[0] / "data").read_text()
        if text == "bad":
            raise OsvError(["bad record"])
        return FakeOsvDatabase(only=set(text.split()))

    root = tmp_path / "osv"
    root.mkdir()
    every = " ".join(r["id"] for r in MANIFEST["records"])
    (root / "data").write_text(every)
    data = OsvData((root,), interval=0.0, load=load)  # type: ignore[arg-type]
    loaded = data.database.records
    (root / "data").write_text("bad")
    assert not data.reload() and not data.reload() and not data.reload()
    assert len(calls) == 2 and data.failures == 1  # the start, then one attempt for these files
    (root / "data").write_text(every.split()[0])  # one record left of all of them
    assert not data.reload() and data.database.records == loaded and data.failures == 2
    assert data.error is not None and "fewer than half" in data.error


def test_workers_share_the_data_read_before_the_fork(
    tmp_path: Path, write_policy: PolicyWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gate serve` reads the OSV data once, to check it before forking, and its workers start from that read
    (not one read per worker on top of it)."""
    loads: list[int] = []

    def load(cls: type, paths: list[Path]) -> FakeOsvDatabase:
        loads.append(1)
        return FakeOsvDatabase()

    monkeypatch.setattr(OsvDatabase, "load", classmethod(load))
    settings = Settings(policies=(write_policy(AGE_POLICY),), osv=(OSV / "PyPI-all.zip",), cache_dir=tmp_path / "c")
    read = check_settings(settings)
    assert read is not None
    app = Gunicorn(settings, {}, read).load()
    assert loads == [1] and app.extensions[EXTENSION].osv.database is read.database
