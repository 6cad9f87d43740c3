"""Two real `gate serve` replicas on one real Redis and on one real PostgreSQL, asked for the same cold attested
pages at the same moment: each provenance is fetched once and verified once by the two together (their metrics
add up to one verification per file), both list what one gate alone lists; and a lease left by a replica that died
while verifying (sealed, genuine, never released) is waited out until it ends, then the work is done once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from gate.gather.pypi import PROVENANCE
from gate.proxy.evidence import NAMESPACE
from gate.proxy.state import EXTENSION, Gate
from gate.proxy.stores import open_store
from tests.conftest import MINI_PYPI
from tests.proxy.conftest import AGE_POLICY, ATTESTED_POLICY, JSON_V1
from tests.support.attested_pages import (
    PROJECT,
    SIGNED_POLICY,
    add_attested_files,
    at_once,
    counter,
    keys_of,
    metrics_of,
)
from tests.support.backend_process import BackendProcess
from tests.support.gate_app import gate_app
from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

from .conftest import SECRET

pytestmark = pytest.mark.slow
REAL_NOW = dt.datetime.now(dt.UTC)
FILES = 24
PROJECTS = (PROJECT, "sampleproject")


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningUpstream, int]]:
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path_factory.mktemp("upstream"))
    add_attested_files(index, FILES, REAL_NOW - dt.timedelta(days=60))
    with serve(index) as running:
        yield running, sum(1 for p in PROJECTS for f in index.files(p) if f.provenance is not None)


def listing(body: dict[str, list[dict[str, str]]]) -> list[str]:
    return sorted(f["filename"] for f in body["files"])


@pytest.mark.parametrize("engine", ["redis", "postgresql"])
def test_two_replicas_building_one_cold_page_verify_each_provenance_once(
    engine: str, attested: tuple[RunningUpstream, int], tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    upstream, evidence = attested
    server: BackendProcess = request.getfixturevalue("shared_redis" if engine == "redis" else "shared_postgres")
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, text in (("age", AGE_POLICY), ("attested", ATTESTED_POLICY), ("signed", SIGNED_POLICY)):
        (policies / f"{name}.yaml").write_text(text)
    (tmp_path / "secret").write_bytes(SECRET)
    alone = gate_app(policies, cache_dir=tmp_path / "alone", clock=lambda: dt.datetime.now(dt.UTC),
                     upstream=upstream.url, timeout=20.0)  # one gate with its own SQLite: the reference
    wanted = {p: listing(alone.test_client().get(f"/simple/{p}/", headers={"Accept": JSON_V1}).get_json())
              for p in PROJECTS}
    state: Gate = alone.extensions[EXTENSION]
    _, dead = keys_of(state.trust_digest, upstream, 2)
    common = ["--policy", str(policies), "--upstream", upstream.url, "--cache-url", server.url,
              "--cache-secret-file", str(tmp_path / "secret"), "--workers", "1", "--threads", "8"]
    with ExitStack() as stack:
        urls = [stack.enter_context(running_gate([*common, "--cache-dir", str(tmp_path / n)], tmp_path / f"{n}.log",
                                                 start_timeout=60)) for n in "ab"]
        # a third replica died while verifying file 2: its sealed lease stays for 5 s, nobody stores an outcome
        store = open_store(server.url, None, secret=SECRET)
        assert store.claim(NAMESPACE, dead, 5.0) is not None
        store.close()
        upstream.clear_log()
        answers = at_once([(url, project) for project in PROJECTS for url in urls])
        assert [r.status_code for r, _ in answers] == [200] * len(answers)
        assert [listing(r.json()) for r, _ in answers] == [wanted[p] for p in PROJECTS for _ in urls]
        metrics = metrics_of(urls)  # each replica's own (cache directories apart)
        assert requests.get(f"{urls[0]}/-/health", timeout=30).json()["cache"]["backend"] == engine

    def total(name: str, **labels: str) -> float:
        return sum(counter(text, name, **labels) for text in metrics)

    assert sum(1 for path in upstream.request_log if path.startswith("/integrity/")) == evidence
    assert total("gate_cache_misses_total", cache=PROVENANCE) == evidence
    assert total("gate_cache_misses_total", cache=NAMESPACE) == evidence  # verified once by the two together
    assert total("gate_cache_hits_total", cache=NAMESPACE) == evidence  # each outcome used by the other
    assert total("gate_lease_waits_total", cache=NAMESPACE, outcome="alone") == 1  # the dead one's, waited out
    assert total("gate_store_errors_total", backend=engine, op="seal") == 0
