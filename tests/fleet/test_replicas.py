"""Two real `gate serve` replicas (gunicorn) on one real Redis and on one real PostgreSQL: replica B reuses what
replica A verified and rendered (its metrics show the hits, and B never verifies anything itself), both decide
alike, every replica's status page shows every replica's denials (the PostgreSQL audit table), and when the
engine is killed mid-run both keep deciding, fail-closed: the same files listed, denied downloads 403, and under
--audit-required the downloads they cannot audit 503. No password shows in their logs, health or status page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import MINI_PYPI
from tests.proxy.conftest import AGE_POLICY, ATTESTED_POLICY, JSON_V1
from tests.support.backend_process import BackendProcess
from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

from .conftest import SECRET

pytestmark = pytest.mark.slow
REAL_NOW = dt.datetime.now(dt.UTC)
PUBLIC = "http://gate.example/"  # the load balancer's name: both replicas render the same pages
ALLOWED, DENIED = "demo-1.0-py3-none-any.whl", "demo-2.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUpstream]:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path_factory.mktemp("upstream"))
    index.add_wheel("demo", "1.0", upload_time=REAL_NOW - dt.timedelta(days=60))
    index.add_wheel("demo", "2.0", upload_time=REAL_NOW - dt.timedelta(days=2))  # denied: younger than 7 days
    with serve(index) as running:
        yield running


def counter(metrics: str, name: str, **labels: str) -> float:
    """The value of one series of `/-/metrics` (0 when absent)."""
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{shown}}}" if shown else name
    found = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def page(url: str, project: str) -> requests.Response:
    response = requests.get(f"{url}/simple/{project}/", headers={"Accept": JSON_V1}, timeout=60)
    assert response.status_code == 200, response.text
    return response


def listed(url: str, project: str) -> list[str]:
    return sorted(f["filename"] for f in page(url, project).json()["files"])


def status_code(url: str, filename: str) -> int:
    project = filename.split("-", maxsplit=1)[0]
    return requests.get(f"{url}/files/{project}/{filename}", timeout=60).status_code


def status_page(url: str) -> dict[str, Any]:
    response = requests.get(f"{url}/-/", headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200
    report: dict[str, Any] = response.json()
    return report


@pytest.mark.parametrize("engine", ["redis", "postgresql"])
def test_two_replicas_share_one_engine_and_fail_closed_without_it(
    engine: str, upstream: RunningUpstream, tmp_path: Path, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: BackendProcess = request.getfixturevalue("own_redis" if engine == "redis" else "own_postgres")
    (tmp_path / "age.yaml").write_text(AGE_POLICY)
    (tmp_path / "attested.yaml").write_text(ATTESTED_POLICY)
    (tmp_path / "secret").write_bytes(SECRET)
    monkeypatch.setenv("GATE_CACHE_URL", server.url)  # the password in the environment, not on the command line
    common = ["--policy", str(tmp_path / "age.yaml"), "--policy", str(tmp_path / "attested.yaml"),
              "--upstream", upstream.url, "--cache-secret-file", str(tmp_path / "secret"), "--public-url", PUBLIC,
              "--workers", "1", "--threads", "4"]  # one process: its metrics are current
    if engine == "postgresql":  # one audit trail for the fleet; compliance mode: no download it cannot record
        common += ["--audit-url", server.url, "--audit-required"]
    with ExitStack() as stack:
        a, b = (stack.enter_context(running_gate([*common, "--cache-dir", str(tmp_path / name)],
                                                 tmp_path / f"{name}.log", start_timeout=60))
                for name in ("a", "b"))

        # A judges, verifies and renders; B finds it all in the shared store
        first = {p: page(a, p).content for p in ("sampleproject", "demo")}
        assert counter(requests.get(f"{a}/-/metrics", timeout=30).text, "gate_cache_misses_total",
                       cache="verified") > 0
        assert {p: page(b, p).content for p in first} == first  # byte for byte: the same rendered pages
        metrics_b = requests.get(f"{b}/-/metrics", timeout=30).text
        assert counter(metrics_b, "gate_cache_hits_total", cache="pypi.rendered") == 2
        assert counter(metrics_b, "gate_cache_misses_total", cache="verified") == 0  # B verified nothing itself
        # another view of the page (HTML) is rendered by B, from the evidence A verified
        html = requests.get(f"{b}/simple/sampleproject/", headers={"Accept": "text/html"}, timeout=60)
        assert html.status_code == 200 and "sampleproject" in html.text
        metrics_b = requests.get(f"{b}/-/metrics", timeout=30).text
        assert counter(metrics_b, "gate_cache_hits_total", cache="verified") > 0
        assert counter(metrics_b, "gate_cache_misses_total", cache="verified") == 0

        # the same decisions on both
        listing = {p: listed(a, p) for p in ("sampleproject", "demo")}
        assert listing["demo"] == [ALLOWED] and listing["sampleproject"]
        for url in (a, b):
            assert {p: listed(url, p) for p in listing} == listing
            assert status_code(url, ALLOWED) == 200 and status_code(url, DENIED) == 403
        if engine == "postgresql":  # A's denial on B's status page, and B's on A's
            for url in (a, b):
                report = status_page(url)
                assert "every replica's" in str(report["audit"])
                denied = [d for d in report["denials"] if d["file"] == DENIED]
                assert len(denied) >= 2, report["denials"]

        # the engine dies mid-run: both keep deciding, fail-closed
        server.kill()
        for url in (a, b):
            for _ in range(3):  # the first request finds out, the next ones skip the engine
                assert {p: listed(url, p) for p in listing} == listing  # judged afresh: nothing more is allowed
                assert status_code(url, DENIED) == 403
                assert status_code(url, ALLOWED) == (503 if engine == "postgresql" else 200)
            health = requests.get(f"{url}/-/health", timeout=30)
            body = health.json()
            assert body["status"] == "degraded" and body["cache"]["backend"] == engine
            assert health.status_code == (503 if engine == "postgresql" else 200)
            metrics = requests.get(f"{url}/-/metrics", timeout=30).text
            assert "gate_store_errors_total{" in metrics
            if engine == "postgresql":
                assert counter(metrics, "gate_audit_failures_total") > 0
                assert "cannot read the audit table" in str(status_page(url)["audit"])
            shown = health.text + metrics + str(status_page(url))
            assert server.password not in shown
    for name in ("a", "b"):
        log = (tmp_path / f"{name}.log").read_text()
        assert server.password not in log
        assert "not asked again" in log  # the engine's failure, said once per worker and outage
