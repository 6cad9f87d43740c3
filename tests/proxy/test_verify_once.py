"""Each piece of evidence is fetched once and verified once (per file, evidence digest, source, trusted root and
code) by all the processes on one store, also when they build the same cold page at the same moment: real `gate
serve` processes on one cache directory (as gunicorn's workers share it) decide alike and verify each provenance
once in total. A lease whose holder died is waited out until it ends, and one that is not gate's is not waited
on: either way the page is decided as without it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from gate.gather.pypi import PROVENANCE
from gate.proxy.evidence import NAMESPACE
from gate.proxy.state import EXTENSION, Gate
from gate.proxy.stores.base import LEASES, stored_key
from tests.conftest import MINI_PYPI
from tests.support.attested_pages import (
    PROJECT,
    SIGNED_POLICY,
    add_attested_files,
    at_once,
    counter,
    keys_of,
    metrics_of,
)
from tests.support.gate_app import gate_app
from tests.support.gate_server import running_gate
from tests.support.pypi_model import UpstreamIndex
from tests.support.pypi_upstream import RunningUpstream, serve

from .conftest import AGE_POLICY, ATTESTED_POLICY, JSON_V1

REAL_NOW = dt.datetime.now(dt.UTC)
FILES = 24  # of project bench, each with its own provenance to verify
PROJECTS = (PROJECT, "sampleproject")  # bench: all denied (no provenance names them); sampleproject: real, allowed
SECRET = b"verify-once-test-secret-0123456789"


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningUpstream, int]]:
    """The upstream, and how many of its files carry provenance."""
    index = UpstreamIndex.from_mini_pypi(MINI_PYPI, work_dir=tmp_path_factory.mktemp("upstream"))
    add_attested_files(index, FILES, REAL_NOW - dt.timedelta(days=60))
    with serve(index) as running:
        yield running, sum(1 for p in PROJECTS for f in index.files(p) if f.provenance is not None)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name, text in (("age", AGE_POLICY), ("attested", ATTESTED_POLICY), ("signed", SIGNED_POLICY)):
        (folder / f"{name}.yaml").write_text(text)
    return folder


def app(policies: Path, cache: Path, upstream: RunningUpstream, **settings: Any) -> Flask:
    return gate_app(policies, cache_dir=cache, clock=lambda: dt.datetime.now(dt.UTC), upstream=upstream.url,
                    timeout=20.0, **settings)


def listing(response: requests.Response | Any) -> list[str]:
    body = response.json() if isinstance(response, requests.Response) else response.get_json()
    return sorted(f["filename"] for f in body["files"])


def reference(policies: Path, tmp_path: Path, upstream: RunningUpstream) -> dict[str, list[str]]:
    """What one process alone lists (its own cache)."""
    client = app(policies, tmp_path / "reference", upstream).test_client()
    return {p: listing(client.get(f"/simple/{p}/", headers={"Accept": JSON_V1})) for p in PROJECTS}


def provenance_fetches(upstream: RunningUpstream) -> int:
    return sum(1 for path in upstream.request_log if path.startswith("/integrity/"))


@pytest.mark.slow
def test_two_processes_on_one_cache_fetch_and_verify_each_provenance_once(
    attested: tuple[RunningUpstream, int], policies: Path, tmp_path: Path
) -> None:
    upstream, evidence = attested
    wanted = reference(policies, tmp_path, upstream)
    assert wanted[PROJECT] == [] and wanted["sampleproject"]  # bench denied, sampleproject's attested files allowed
    common = ["--policy", str(policies), "--upstream", upstream.url, "--cache-dir", str(tmp_path / "cache"),
              "--workers", "1", "--threads", "8"]
    with ExitStack() as stack:
        urls = [stack.enter_context(running_gate(common, tmp_path / f"{n}.log", start_timeout=60)) for n in "ab"]
        upstream.clear_log()
        answers = at_once([(url, project) for project in PROJECTS for url in urls])  # both cold pages, both at once
        assert [r.status_code for r, _ in answers] == [200] * len(answers)
        shown = [listing(r) for r, _ in answers]
        assert shown == [wanted[project] for project in PROJECTS for _ in urls]  # the same decisions as one alone
        metrics = metrics_of(urls)[0]  # one cache directory: every process's counts
    assert provenance_fetches(upstream) == evidence  # each provenance fetched once in total
    assert counter(metrics, "gate_cache_misses_total", cache=PROVENANCE) == evidence
    assert counter(metrics, "gate_cache_misses_total", cache=NAMESPACE) == evidence  # and verified once in total
    assert counter(metrics, "gate_cache_hits_total", cache=NAMESPACE) == evidence  # the other used its outcome


@pytest.mark.slow
def test_gunicorn_workers_fetch_each_provenance_once(
    attested: tuple[RunningUpstream, int], policies: Path, tmp_path: Path
) -> None:
    """Two gunicorn workers asked for one cold page four times at once: each provenance is fetched once, every
    answer is the one a single process gives."""
    upstream, _ = attested
    wanted = reference(policies, tmp_path, upstream)
    args = ["--policy", str(policies), "--upstream", upstream.url, "--cache-dir", str(tmp_path / "cache"),
            "--workers", "2", "--threads", "8"]
    with running_gate(args, tmp_path / "gate.log", start_timeout=60) as url:
        upstream.clear_log()
        answers = at_once([(url, PROJECT)] * 4)
    assert [r.status_code for r, _ in answers] == [200] * 4, [r.text[:300] for r, _ in answers]
    assert [listing(r) for r, _ in answers] == [wanted[PROJECT]] * 4
    assert provenance_fetches(upstream) == FILES


@pytest.mark.parametrize("secret", [None, SECRET], ids=["plain", "sealed"])
def test_a_dead_holders_lease_is_waited_out_and_the_page_decided_as_without_it(
    attested: tuple[RunningUpstream, int], policies: Path, tmp_path: Path, secret: bytes | None
) -> None:
    """A worker that died holding the leases on fetching one provenance and on verifying another: the next worker
    waits for each until it ends, then does the work itself; the page is the one decided without the leases."""
    upstream, _ = attested
    wanted = reference(policies, tmp_path, upstream)
    gate = app(policies, tmp_path / "cache", upstream, cache_secret=secret)
    state: Gate = gate.extensions[EXTENSION]
    fetch, _ = keys_of(state.trust_digest, upstream, 0)
    _, verify = keys_of(state.trust_digest, upstream, 1)
    assert state.store.claim(PROVENANCE, fetch, 2.0) is not None  # and never released: its holder died
    assert state.store.claim(NAMESPACE, verify, 2.0) is not None
    response = gate.test_client().get(f"/simple/{PROJECT}/", headers={"Accept": JSON_V1})
    assert response.status_code == 200 and listing(response) == wanted[PROJECT]
    metrics = gate.test_client().get("/-/metrics").text
    for cache in (PROVENANCE, NAMESPACE):
        assert counter(metrics, "gate_lease_waits_total", cache=cache, outcome="alone") == 1
        assert counter(metrics, "gate_cache_misses_total", cache=cache) == FILES  # every file done here, once


def test_a_lease_that_is_not_gates_is_not_waited_on(
    attested: tuple[RunningUpstream, int], policies: Path, tmp_path: Path
) -> None:
    """Whoever can write to the store plants leases, never to end, on every verification of the page: gate does
    not wait on them (they fail their seal) and decides the page as without them."""
    upstream, _ = attested
    wanted = reference(policies, tmp_path, upstream)
    gate = app(policies, tmp_path / "cache", upstream, cache_secret=SECRET)
    state: Gate = gate.extensions[EXTENSION]
    forever = dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp()
    for number in range(FILES):
        _, verify = keys_of(state.trust_digest, upstream, number)
        state.store.backend.write(LEASES + NAMESPACE, stored_key(verify), b"x", "{}", forever)
    response = gate.test_client().get(f"/simple/{PROJECT}/", headers={"Accept": JSON_V1})
    assert response.status_code == 200 and listing(response) == wanted[PROJECT]
    metrics = gate.test_client().get("/-/metrics").text
    assert "gate_lease_waits_total{" not in metrics
    assert counter(metrics, "gate_cache_misses_total", cache=NAMESPACE) == FILES
    assert counter(metrics, "gate_store_errors_total", backend="sqlite", op="seal") >= FILES
