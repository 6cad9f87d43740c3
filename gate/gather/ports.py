"""What a facts service needs from its front end: an `EvidenceCache` (fetching and verifying evidence, kept
as long as the front end keeps it), and what it gives back: `Evidence`, the facts with when they may change.

`gate check` runs once and keeps nothing (`Uncached`); the proxy keeps evidence bytes and verification
outcomes in its store (`gate.proxy.evidence.StoreEvidence`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from gate.facts import AttestationFact, Ecosystem, Vulnerability
from gate.verify.api import BundleVerifier, verify_evidence
from gate.verify.target import Target

FETCH_RETRY = dt.timedelta(seconds=60)  # evidence that could not be fetched is asked for again after this long


# (ecosystem, name, version) -> the OSV records that apply to that release (`gate.sources.osv.OsvDatabase.lookup`)
VulnerabilityLookup = Callable[[Ecosystem, str, str], tuple[Vulnerability, ...]]


def no_vulnerabilities(ecosystem: Ecosystem, name: str, version: str) -> tuple[Vulnerability, ...]:
    """`VulnerabilityLookup` without OSV data (no --osv): no record applies to anything."""
    return ()


class Evidence(NamedTuple):
    """The attestation facts of one file and when they may differ (None: never, the file is immutable):
    a failed fetch is retried after FETCH_RETRY, an entry cached with a TTL is asked for again when it ends.
    A judgement on these facts holds no longer than that."""

    facts: tuple[AttestationFact, ...]
    recheck: dt.datetime | None


NO_EVIDENCE = Evidence((), None)


def earliest(*moments: dt.datetime | None) -> dt.datetime | None:
    """The earliest of the given moments (None: none given)."""
    return min((m for m in moments if m is not None), default=None)


def failed(facts: Sequence[AttestationFact]) -> bool:
    """Whether evidence gave nothing that verified completely (no bundle, or one that did not verify)."""
    return not facts or not all(f.verified for f in facts)


class EvidenceCache(Protocol):
    """How a front end fetches and verifies evidence. `namespace` names the kind of evidence (`provenance`,
    `conda.sidecar`), `url` where it is, `pin` the file it is for (its sha256, and what else it depends on)."""

    def fetch(
        self, namespace: str, url: str, pin: str, fetch: Callable[[], bytes | None], now: dt.datetime, *,
        absent_ttl: float, present_ttl: float | None,
    ) -> tuple[bytes | None, dt.datetime | None]:
        """(the bytes `fetch()` gives, or None when there are none; when to ask again: None for never).
        `fetch` raises the front end's fetch error, which is passed on."""
        ...

    def verify(
        self, namespace: str, url: str, pin: str, data: bytes, target: Target, *, now: dt.datetime
    ) -> Evidence:
        """Every bundle in `data` (fetched from `url`) verified for `target`."""
        ...


class Uncached:
    """`EvidenceCache` for one run of `gate check`: every document fetched and verified when asked for."""

    def __init__(self, verifier: BundleVerifier) -> None:
        self.verifier = verifier

    def fetch(
        self, namespace: str, url: str, pin: str, fetch: Callable[[], bytes | None], now: dt.datetime, *,
        absent_ttl: float, present_ttl: float | None,
    ) -> tuple[bytes | None, dt.datetime | None]:
        return fetch(), None

    def verify(
        self, namespace: str, url: str, pin: str, data: bytes, target: Target, *, now: dt.datetime
    ) -> Evidence:
        return Evidence(tuple(verify_evidence(data, url, target, self.verifier)), None)
