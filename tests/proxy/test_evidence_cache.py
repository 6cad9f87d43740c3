"""Verified evidence is cached by file, evidence and trusted root, and read back as the same facts."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from pathlib import Path

from gate.facts import Ecosystem
from gate.proxy.app import EXTENSION, Gate
from gate.proxy.evidence import NAMESPACE, verified
from gate.verify.sigstore import Target
from tests.conftest import REPO
from tests.support.gate_app import gate_app

WHEEL = REPO / "examples" / "sampleproject-4.0.0-py3-none-any.whl"
ATTESTATION = WHEEL.with_name(WHEEL.name + ".publish.attestation")
POLICY = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: age}\nspec: {minimumAge: 1d}\n"


def _state(tmp_path: Path) -> Gate:
    (tmp_path / "p.yaml").write_text(POLICY)
    app = gate_app(tmp_path / "p.yaml", cache_dir=tmp_path / "cache", clock=lambda: dt.datetime.now(dt.UTC))
    state: Gate = app.extensions[EXTENSION]
    return state


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
