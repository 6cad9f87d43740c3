"""Evidence for the proxy: fetched bytes cached by evidence URL and file, verification cached by digest.

Evidence bytes are stored under the URL they came from and the file they are for (`evidence_key`), so
another URL for the same file is fetched on its own. Evidence that does not verify is kept only for
FAILURE_TTL (`expire_failed`): one bad answer from upstream never pins a denial. Verifying costs
milliseconds of crypto; its outcome depends only on the file, the evidence bytes, where they came from
and the trusted root (by the digest of its bytes), so it is stored under all four and reused by every
worker (a failed outcome for FAILURE_TTL only).

Across workers and replicas each piece of evidence is fetched once and each outcome verified once, also when they
ask for it at the same moment (`gate.proxy.stores.lease.once`): one holds a lease and does it, the others wait
for its stored outcome (at most the fetch's timeout or VERIFY_LEASE) and do it themselves only when none comes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable

import msgspec

from gate.facts import AttestationFact
from gate.gather.ports import Evidence, failed
from gate.proxy.state import Gate
from gate.proxy.stores.base import Entry
from gate.proxy.stores.lease import once
from gate.verify.api import verify_evidence
from gate.verify.target import Target

NAMESPACE = "verified"
FAILURE_TTL = 300.0  # seconds: evidence that did not verify is fetched (and verified) again after this long
VERIFY_LEASE = 10.0  # seconds another worker waits, at most, for one verification (it takes milliseconds)


def recheck_at(now: dt.datetime, expires: float | None) -> dt.datetime | None:
    """When a store entry expiring at Unix time `expires` (wall clock) will be asked for again, on the
    clock `now` is read from (the proxy's clock may be another than the store's)."""
    return None if expires is None else now + dt.timedelta(seconds=max(expires - time.time(), 0.0))


def cached_fetch(
    state: Gate, namespace: str, key: str, fetch: Callable[[], bytes | None], now: dt.datetime, *,
    absent_ttl: float, present_ttl: float | None,
) -> tuple[bytes | None, dt.datetime | None]:
    """Evidence bytes through the store under (`namespace`, `key`): (the bytes or None when upstream has
    none, when to ask again: None for never). What is absent is asked for again after `absent_ttl` seconds,
    what is present after `present_ttl` (None: it never changes); `fetch` raising leaves nothing stored."""

    def stored() -> Entry | None:
        return state.store.get(namespace, key)

    def fetched() -> Entry:
        data = fetch()
        ttl = absent_ttl if data is None else present_ttl
        entry = Entry(data or b"", {"absent": data is None}, None if ttl is None else time.time() + ttl)
        state.store.put(namespace, key, entry.value, entry.meta, entry.expires)
        return entry

    entry = once(state.store, state.metrics, namespace, key, lookup=stored, compute=fetched,
                 ttl=state.settings.timeout)
    return (None if entry.meta.get("absent") else entry.value), recheck_at(now, entry.expires)


def evidence_key(url: str, pin: str) -> str:
    """The store key of the evidence at `url` for one file (`pin`: its sha256, and what else it depends on)."""
    return f"{url}|{pin}"


def expire_failed(state: Gate, namespace: str, key: str, data: bytes, now: dt.datetime) -> dt.datetime | None:
    """Keep the evidence bytes stored under `key`, which did not verify, no longer than FAILURE_TTL (a fetch
    may have gone wrong, or upstream may fix it); when they are to be asked for again."""
    entry = state.store.get(namespace, key)
    expires = time.time() + FAILURE_TTL
    if entry is not None and entry.value == data and (entry.expires is None or entry.expires > expires):
        state.store.put(namespace, key, data, entry.meta, expires)
        return recheck_at(now, expires)
    return recheck_at(now, entry.expires) if entry is not None else None


_CACHED = msgspec.json.Decoder(tuple[AttestationFact, ...])


def verified(state: Gate, data: bytes, source: str, target: Target) -> tuple[AttestationFact, ...]:
    """Every bundle in `data` verified for `target`, from the cache when it was done before."""
    key = outcome_key(data, source, target, state.trust_digest)

    def stored() -> tuple[AttestationFact, ...] | None:
        entry = state.store.get(NAMESPACE, key)
        try:
            return None if entry is None else _CACHED.decode(entry.value)
        except msgspec.MsgspecError:  # unreadable: verify again (and replace it)
            return None

    def verify() -> tuple[AttestationFact, ...]:
        facts = tuple(verify_evidence(data, source, target, state.verifier))
        expires = time.time() + FAILURE_TTL if failed(facts) else None
        state.store.put(NAMESPACE, key, msgspec.json.encode(facts), None, expires)
        return facts

    return once(state.store, state.metrics, NAMESPACE, key, lookup=stored, compute=verify, ttl=VERIFY_LEASE)


def outcome_key(data: bytes, source: str, target: Target, trust_digest: str) -> str:
    """The store key of the verification of evidence `data` from `source` for `target` under the trusted root and
    code `trust_digest` names (`Gate.trust_digest`)."""
    digests = (hashlib.sha256(data).hexdigest(), trust_digest, hashlib.sha256(source.encode()).hexdigest())
    return ":".join((target.ecosystem.value, target.sha256, target.filename, *digests))


class StoreEvidence:
    """The proxy's `EvidenceCache` (gate.gather.ports): evidence bytes kept in the store under their URL and
    the file they are for, verification outcomes under the evidence's digest; what did not verify is fetched
    and verified again after FAILURE_TTL."""

    def __init__(self, state: Gate) -> None:
        self.state = state

    def fetch(
        self, namespace: str, url: str, pin: str, fetch: Callable[[], bytes | None], now: dt.datetime, *,
        absent_ttl: float, present_ttl: float | None,
    ) -> tuple[bytes | None, dt.datetime | None]:
        return cached_fetch(
            self.state, namespace, evidence_key(url, pin), fetch, now, absent_ttl=absent_ttl, present_ttl=present_ttl
        )

    def verify(self, namespace: str, url: str, pin: str, data: bytes, target: Target, *, now: dt.datetime) -> Evidence:
        facts = verified(self.state, data, url, target)
        recheck = expire_failed(self.state, namespace, evidence_key(url, pin), data, now) if failed(facts) else None
        return Evidence(facts, recheck)
