"""The proxy's caches of what it fetched: upstream bodies (`CachedUpstream`) and verified evidence."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from gate.facts import Ecosystem
from gate.proxy import state as state_module
from gate.proxy.evidence import NAMESPACE, verified
from gate.proxy.state import EXTENSION, Gate
from gate.proxy.stores import open_store
from gate.proxy.upstream import CachedUpstream
from gate.sources.http import Fetched, Validators
from gate.verify.target import Target
from tests.conftest import ATTESTATIONS
from tests.support.gate_app import gate_app

WHEEL = ATTESTATIONS / "dists" / "sampleproject-4.0.0-py3-none-any.whl"
ATTESTATION = ATTESTATIONS / "pep740" / f"{WHEEL.name}.publish.attestation"
POLICY = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 1d}\n"


def _state(tmp_path: Path) -> Gate:
    (tmp_path / "p.yaml").write_text(POLICY)
    app = gate_app(tmp_path / "p.yaml", cache_dir=tmp_path / "cache", clock=lambda: dt.datetime.now(dt.UTC))
    state: Gate = app.extensions[EXTENSION]
    return state


def test_an_unchanged_body_only_refreshes_the_meta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state(tmp_path)
    bodies = [b"one", b"one", b"two"]
    parsed: list[bytes] = []

    def fetch(validators: Validators | None, meta: Mapping[str, Any]) -> Fetched[bytes]:
        body = bodies.pop(0)
        return Fetched(body, Validators(), 0.0, 0.01, body=body)  # no validators, no freshness: always asked

    def parse(key: str, body: bytes, meta: Mapping[str, Any]) -> bytes:
        parsed.append(body)
        return body

    writes: list[bytes] = []
    put = state.store.put

    def counted(namespace: str, key: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        writes.append(value)
        put(namespace, key, value, *args, **kwargs)

    monkeypatch.setattr(state.store, "put", counted)
    cached = CachedUpstream(state, "test", parse, noun="page", memo=1)
    digests = [cached.digest("k", fetch) for _ in range(3)]
    assert digests[0] == digests[1] != digests[2]
    assert writes == [b"one", b"two"]  # the second, identical answer was not written again
    meta = state.store.get_meta("test", "k")
    assert meta is not None and meta["digest"] == digests[2]
    assert cached.parsed("k", digests[2]) == b"two" and parsed == []  # memoized from the fetch
    cold = CachedUpstream(state, "test", parse, noun="page", memo=1)  # another worker: reads the store
    assert cold.parsed("k", digests[2]) == b"two" and parsed == [b"two"]


def _rows(tmp_path: Path) -> list[bytes]:
    with sqlite3.connect(tmp_path / "cache" / "cache.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT value FROM entries WHERE namespace = ?", (NAMESPACE,))]


def test_cached_facts_equal_verified_ones_and_a_broken_entry_is_verified_again(tmp_path: Path) -> None:
    state = _state(tmp_path)
    target = Target(WHEEL.name, hashlib.sha256(WHEEL.read_bytes()).hexdigest(), Ecosystem.PYPI)
    data = ATTESTATION.read_bytes()
    first = verified(state, data, "attestation", target)
    assert first and all(a.verified for a in first) and first[0].publisher is not None
    assert first[0].integratedTime is not None and first[0].integratedTime.tzinfo is not None
    assert verified(state, data, "attestation", target) == first  # from the store
    assert 'gate_cache_hits_total{cache="verified"} 1' in state.metrics.render()
    with sqlite3.connect(tmp_path / "cache" / "cache.sqlite3") as db:
        db.execute("UPDATE entries SET value = ? WHERE namespace = ?", (b'[{"verified": "yes"}]', NAMESPACE))
    assert verified(state, data, "attestation", target) == first  # verified again, not trusted
    assert _rows(tmp_path) != [b'[{"verified": "yes"}]']
    assert 'gate_cache_hits_total{cache="verified"} 1' in state.metrics.render()


def test_what_another_version_of_gate_verified_or_rendered_is_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store outlives upgrades and is shared by replicas: an outcome an older gate verified (before a verifier
    fix) is verified again by the new code, and its pages are rendered again, under the same policies."""
    old = _state(tmp_path)
    target = Target(WHEEL.name, hashlib.sha256(WHEEL.read_bytes()).hexdigest(), Ecosystem.PYPI)
    data = ATTESTATION.read_bytes()
    first = verified(old, data, "attestation", target)
    monkeypatch.setattr(state_module, "code_digest", lambda: "0" * 64)  # another version's code
    new = _state(tmp_path)
    assert new.policy_digest == old.policy_digest and new.view_digest != old.view_digest
    assert verified(new, data, "attestation", target) == first
    assert 'gate_cache_hits_total{cache="verified"}' not in new.metrics.render()  # verified afresh, not reused
    assert verified(old, data, "attestation", target) == first
    assert 'gate_cache_hits_total{cache="verified"} 1' in old.metrics.render()  # (the same code does reuse it)


def test_keys_with_different_tokens_never_share_an_entry_and_stay_off_disk(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "cache.sqlite3")
    first, second = "https://conda.example/t/TOKEN-A1/ch/noarch", "https://conda.example/t/TOKEN-B2/ch/noarch"
    store.put("conda.repodata", first, b"what A may see")
    store.put("conda.repodata", second, b"what B may see")
    assert (entry := store.get("conda.repodata", first)) is not None and entry.value == b"what A may see"
    assert (entry := store.get("conda.repodata", second)) is not None and entry.value == b"what B may see"
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"TOKEN-A1" not in on_disk and b"TOKEN-B2" not in on_disk


def test_the_code_digest_follows_the_versions_of_the_libraries_that_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sigstore upgrade (a verifier fix) must not reuse outcomes the old sigstore produced."""
    before = state_module.code_digest()
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "999.0" if name == "sigstore" else real(name))
    state_module.code_digest.cache_clear()
    try:
        assert state_module.code_digest() != before
    finally:
        monkeypatch.undo()
        state_module.code_digest.cache_clear()
    assert state_module.code_digest() == before
