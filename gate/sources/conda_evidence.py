"""Find and verify the attestation sidecars of one conda package, wherever its bytes come from.

Two layouts are looked for next to `<file>`: the sidecar draft (conda/ceps PR 142) `<file>.sigs`, with its
content-addressed copy `<file>.sigs.<attestations_sha256>`, whose bytes must hash to the repodata record's
`attestations_sha256`; and prefix.dev's `<file>.v0.sigs`. Both hold a JSON array of Sigstore bundles.
A sidecar the record advertises but that cannot be found is a failed fact, not "no attestations".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gate.facts import AttestationFact
from gate.verify.api import BundleVerifier, verify_evidence
from gate.verify.bounded import MAX_EVIDENCE_BYTES
from gate.verify.target import Target, unverified

SIGS = ".sigs"
V0_SIGS = ".v0.sigs"
MAX_SIDECAR_BYTES = MAX_EVIDENCE_BYTES  # a sidecar holds a few bundles of ~10 kB each

_HEX64 = re.compile(r"[0-9a-f]{64}")

# Sidecar filename -> (where it was found, its bytes), or None when there is no such file.
SidecarFetch = Callable[[str], tuple[str, bytes] | None]
# (evidence bytes, source, target) -> one fact per bundle; the proxy passes a cached verifier.
Verify = Callable[[bytes, str, Target], Sequence[AttestationFact]]


def verify_with(verifier: BundleVerifier) -> Verify:
    def verify(data: bytes, source: str, target: Target) -> list[AttestationFact]:
        return verify_evidence(data, source, target, verifier)

    return verify


class SidecarError(Exception):
    """A sidecar exists but could not be read (an I/O or HTTP failure, or one larger than the cap)."""


class PinError(ValueError):
    """The record's `attestations_sha256` is there but is not a sha256: the `.sigs` it pins cannot be checked."""


def advertised_sha256(record: Mapping[str, Any] | None) -> str | None:
    """The record's `attestations_sha256` (hex digits in either case, read as lowercase, as the record's
    `sha256` is), None when it has none; raise PinError for any other value (another length, non-hex, not a
    string), so that a pin that cannot be checked is never mistaken for no pin."""
    value = (record or {}).get("attestations_sha256")
    if value is None:
        return None
    if isinstance(value, str) and _HEX64.fullmatch(value.lower()):
        return value.lower()
    raise PinError(f"attestations_sha256 in repodata is not a sha256 (64 hex digits): {str(value)[:80]!r}")


def _fetch(fetch: SidecarFetch, name: str) -> tuple[str, bytes] | AttestationFact | None:
    try:
        return fetch(name)
    except SidecarError as err:
        return unverified(name, f"sidecar-fetch: {err}")


def sidecar_attestations(
    filename: str,
    target: Target,
    record: Mapping[str, Any] | None,
    fetch: SidecarFetch,
    verify: Verify,
) -> list[AttestationFact]:
    """One fact per bundle in the package's sidecars (identical `.sigs`/`.v0.sigs` bytes count once).

    The `.sigs` bytes must hash to the record's `attestations_sha256` before they are parsed.
    """
    facts: list[AttestationFact] = []
    seen: set[str] = set()
    found: tuple[str, bytes] | AttestationFact | None = None
    advertised: str | None = None
    try:
        advertised = advertised_sha256(record)
    except PinError as err:
        # A pin that cannot be checked rejects the `.sigs` it pins: never fetched (the value never builds a
        # name or URL), never verified without the pin. `.v0.sigs` is not pinned and is judged on its own.
        facts.append(unverified(filename + SIGS, f"sidecar-hash: {err}; the .sigs sidecar is not used"))
    else:
        found = _fetch(fetch, filename + SIGS)
    if found is None and advertised is not None:
        found = _fetch(fetch, f"{filename}{SIGS}.{advertised}")
    if isinstance(found, AttestationFact):
        facts.append(found)
    elif found is not None:
        source, data = found
        digest = hashlib.sha256(data).hexdigest()
        seen.add(digest)
        if advertised is not None and digest != advertised:
            facts.append(
                unverified(source, "sidecar-hash: sidecar bytes do not match the attestations_sha256 in repodata")
            )
        else:
            facts += verify(data, source, target)
    elif advertised is not None:
        facts.append(
            unverified(filename + SIGS, "sidecar-missing: repodata advertises attestations_sha256 but no sidecar")
        )
    v0 = _fetch(fetch, filename + V0_SIGS)
    if isinstance(v0, AttestationFact):
        facts.append(v0)
    elif v0 is not None and hashlib.sha256(v0[1]).hexdigest() not in seen:
        facts += verify(v0[1], v0[0], target)
    return facts
