"""Verify one Sigstore bundle for one file, offline, and turn the outcome into an AttestationFact.

The certificate identity is *not* judged here: the bundle's signature, certificate chain, transparency
log entry and timestamps are verified against the trusted root, then the identity and claims become
facts that the compiled policy judges. The statement must name this file and its sha256.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache, partial
from pathlib import Path
from typing import Any

from cryptography import x509
from packaging.utils import (
    parse_sdist_filename,
    parse_wheel_filename,
)
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm

from gate.errors import GateError
from gate.facts import AttestationFact, Ecosystem
from gate.verify.bounded import EvidenceParseError, parse_json
from gate.verify.claims import certificate_claims, certificate_identity, publisher_from_claims, source_claims
from gate.verify.intoto import SlsaFacts, slsa_facts
from gate.verify.rekor_set import CheckError, EntryLookup, check_log_key, verify_intoto_bundle
from gate.verify.target import Target, describe_error

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EvidenceError(Exception):
    """Evidence that does not establish anything about the target; becomes `verified: false`."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")


class _IdentityJudgedByPolicy:
    """A sigstore VerificationPolicy that accepts any certificate identity.

    Safe only because the identity, issuer and claims are returned as facts and judged by the
    compiled gate policy; a fact is never used as evidence of a signer without that judgement.
    """

    def verify(self, cert: x509.Certificate) -> None:
        return None


class TrustRootError(GateError):
    def __init__(self, path: Path, err: Exception) -> None:
        super().__init__(f"cannot load Sigstore trusted root {path}: {err}")

    def diagnostics(self) -> str:
        return f"{self}\nPass a trusted_root.json (protobuf-specs TrustedRoot JSON) with --trusted-root."


@cache
def _verifier(path: Path) -> Verifier:
    try:
        return Verifier(trusted_root=TrustedRoot.from_file(str(path)))
    except Exception as err:  # pydantic or sigstore errors for a malformed root
        raise TrustRootError(path, err) from err


def _dist_key(filename: str) -> tuple[Any, ...]:
    """Name and version (and wheel tags) parsed the way PEP 740 compares subjects."""
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)
    return parse_sdist_filename(filename)


def _subject_names_target(name: str, target: Target) -> bool:
    if target.ecosystem is Ecosystem.PYPI:
        try:
            return _dist_key(name) == _dist_key(target.filename)
        except ValueError:  # not a wheel or sdist name, or a version with more digits than int() converts
            return False
    if target.ecosystem is Ecosystem.CONDA:
        return name == target.filename
    return True  # a generic file is bound by digest only


def check_statement(payload: bytes, target: Target, *, exactly_one_subject: bool) -> dict[str, Any]:
    """The in-toto statement must have a subject naming the target with its sha256."""
    try:
        statement = parse_json(payload, "statement")
    except EvidenceParseError as err:
        raise EvidenceError("statement", str(err)) from err
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list) or not subjects:
        raise EvidenceError("statement", "statement has no subject")
    if exactly_one_subject and len(subjects) != 1:
        raise EvidenceError("statement", f"expected exactly one subject, found {len(subjects)}")
    by_digest = [s for s in subjects if isinstance(s, dict) and (s.get("digest") or {}).get("sha256") == target.sha256]
    if not by_digest:
        raise EvidenceError("subject-digest", f"no subject has this file's sha256 {target.sha256}")
    if not any(_subject_names_target(str(s.get("name", "")), target) for s in by_digest):
        names = ", ".join(str(s.get("name")) for s in by_digest)
        raise EvidenceError("subject-name", f"subject {names} does not name {target.filename}")
    return dict(statement)


def _signed_time(verifier: Verifier, bundle: Bundle) -> dt.datetime | None:
    """The earliest time sigstore's verification established for a bundle it verified: a Rekor integrated time
    bound by an inclusion promise, or an RFC 3161 time from a trusted timestamp authority. None when it
    establishes none (or its private helper changed: a signed time is then simply unknown)."""
    try:
        times = [result.time for result in verifier._establish_time(bundle)]
    except Exception:  # nothing is established: the signed time stays unknown
        return None
    return min((t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in times), default=None)


def _check_log_key(verifier: Verifier, bundle: Bundle) -> None:
    """The log key of an entry with an integrated time (a Rekor v1 SET) was valid then (`check_log_key`), which
    sigstore-python's `Verifier` does not check: the same strictness on every path a SET takes."""
    inner = bundle.log_entry._inner
    if inner.integrated_time:
        when = dt.datetime.fromtimestamp(inner.integrated_time, dt.UTC)
        check_log_key(verifier._trusted_root, inner.log_id.key_id, when)


def _integrated_time(bundle: Bundle) -> dt.datetime | None:
    entries = json.loads(bundle.to_json()).get("verificationMaterial", {}).get("tlogEntries", [])
    raw = entries[0].get("integratedTime") if entries else None
    return dt.datetime.fromtimestamp(int(raw), dt.UTC) if raw else None


class SigstoreVerifier:
    """Verifies bundles against one trusted root (a resolved path; `gate.verify.api.BundleVerifier` holds one,
    made on first use)."""

    def __init__(self, trusted_root: Path, *, rekor_lookup: EntryLookup | None = None) -> None:
        self.trusted_root = trusted_root
        self._verifier = _verifier(self.trusted_root)
        self.rekor_lookup = rekor_lookup  # off unless the user opted in: `gate.verify.cosign`

    @property
    def sigstore(self) -> Verifier:
        """sigstore-python's verifier for the trusted root (`gate.verify.rekor_set` runs its checks)."""
        return self._verifier

    def verify(self, bundle: Bundle, target: Target, source: str, *, pep740: bool = False) -> AttestationFact:
        """Verify `bundle` as evidence for `target`; every failure is returned as `verified: false`."""
        try:
            return self._verify(bundle, target, source, pep740=pep740)
        except Exception as err:  # a library fault on hostile input must not crash gate: fail closed
            return AttestationFact(verified=False, source=source, error=f"internal: {describe_error(err)}")

    def _verify(self, bundle: Bundle, target: Target, source: str, *, pep740: bool) -> AttestationFact:
        cert = bundle.signing_certificate
        identity = certificate_identity(cert)
        claims = certificate_claims(cert)
        fact = partial(
            AttestationFact,
            source=source,
            identity=identity,
            issuer=claims.get("issuer"),
            claims=claims,
            publisher=publisher_from_claims(claims, identity),
        )
        predicate_type: str | None = None
        target_channel: str | None = None
        slsa = SlsaFacts()
        signed: dt.datetime | None = None
        try:
            if bundle._dsse_envelope is not None:
                kind = bundle.log_entry._inner.kind_version
                if (kind.kind, kind.version) == ("intoto", "0.0.2"):  # sigstore-python refuses: gate.verify.rekor_set
                    payload_type, payload, signed = verify_intoto_bundle(self._verifier, bundle)
                else:
                    payload_type, payload = self._verifier.verify_dsse(bundle, _IdentityJudgedByPolicy())
                statement = statement_for(payload_type, payload, target, pep740=pep740)
                predicate_type = statement_type(statement)
                predicate = statement.get("predicate")
                if isinstance(predicate, dict) and isinstance(predicate.get("targetChannel"), str):
                    target_channel = predicate["targetChannel"].rstrip("/")
                slsa = slsa_facts(statement, identity, claims.get("issuer"), source_claims(cert))
            else:
                digest = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(target.sha256))
                self._verifier.verify_artifact(digest, bundle, _IdentityJudgedByPolicy())
            _check_log_key(self._verifier, bundle)
        except SigstoreError as err:
            return fact(verified=False, error=f"sigstore: {describe_error(err)}")
        except (EvidenceError, CheckError) as err:
            return fact(verified=False, error=str(err))
        return fact(
            verified=True,
            predicateType=predicate_type,
            integratedTime=_integrated_time(bundle),
            targetChannel=target_channel,
            signedTime=signed or _signed_time(self._verifier, bundle),
            **slsa._asdict(),
        )


def statement_for(payload_type: str, payload: bytes, target: Target, *, pep740: bool = False) -> dict[str, Any]:
    """The in-toto statement of a verified DSSE envelope, which must name `target` (exactly one subject for
    PEP 740 and conda, whose formats say so)."""
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise EvidenceError("payload-type", f"expected {INTOTO_PAYLOAD_TYPE}, got {payload_type}")
    exactly_one = pep740 or target.ecosystem is Ecosystem.CONDA
    return check_statement(payload, target, exactly_one_subject=exactly_one)


def statement_type(statement: dict[str, Any]) -> str | None:
    declared = statement.get("predicateType")
    return declared if isinstance(declared, str) else None
