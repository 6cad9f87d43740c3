"""Verified evidence for the proxy, cached by the file's sha256 (files are immutable).

Verifying a provenance object costs milliseconds of crypto; its outcome depends only on the file, the
evidence bytes and the trusted root, so it is stored under all three and reused by every worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from gate.facts import AttestationFact, Publisher
from gate.proxy.app import Gate
from gate.verify.evidence import verify_evidence
from gate.verify.sigstore import Target

NAMESPACE = "verified"


def attestation_from_json(data: dict[str, Any]) -> AttestationFact:
    """The inverse of `AttestationFact.to_json`."""
    publisher = data.get("publisher")
    integrated = data.get("integratedTime")
    return AttestationFact(
        **{
            **data,
            "publisher": Publisher(**publisher) if isinstance(publisher, dict) else None,
            "integratedTime": dt.datetime.fromisoformat(integrated.replace("Z", "+00:00")) if integrated else None,
        }
    )


def verified(state: Gate, data: bytes, source: str, target: Target) -> tuple[AttestationFact, ...]:
    """Every bundle in `data` verified for `target`, from the cache when it was done before."""
    key = ":".join(
        (target.ecosystem.value, target.sha256, target.filename, hashlib.sha256(data).hexdigest(),
         str(state.settings.trusted_root or "production"))
    )
    entry = state.store.get(NAMESPACE, key)
    if entry is not None:
        state.metrics.inc("gate_cache_hits_total", cache=NAMESPACE)
        return tuple(attestation_from_json(a) for a in json.loads(entry.value))
    state.metrics.inc("gate_cache_misses_total", cache=NAMESPACE)
    facts = tuple(verify_evidence(data, source, target, state.verifier))
    state.store.put(NAMESPACE, key, json.dumps([f.to_json() for f in facts]).encode())
    return facts
