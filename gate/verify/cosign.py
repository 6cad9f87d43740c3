"""Evidence sigstore-python cannot take as a bundle: cosign's legacy `--bundle` (sign-blob and attest-blob),
a detached `.sig` + `.crt` (with or without the `.rekor` SET file), and a plain DSSE envelope with its
certificate embedded (slsa-github-generator before v2).

Each is a certificate, a signature (over the blob, or over a DSSE envelope's PAE) and, when there is one, a
Rekor v1 entry with its SignedEntryTimestamp. With an entry, every check is made (`gate.verify.rekor_set`)
and the evidence verifies. Without one, nothing proves the signature was made while the 10-minute
certificate was valid: every other check is still made (chain at the certificate's own start, as cosign
does for detached material, SCT, signature, subject), and a fact that passes them all is `unverifiable`,
never verified, unless an entry is looked up in a transparency log the user opted into (`--rekor-url`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sigstore import dsse

from gate.facts import AttestationFact
from gate.verify.bounded import EvidenceParseError, parse_json
from gate.verify.claims import certificate_claims, certificate_identity, publisher_from_claims, source_claims
from gate.verify.intoto import SlsaFacts, slsa_facts
from gate.verify.rekor_set import (
    CheckError,
    EntryLookup,
    EntryLookupError,
    SignedEntry,
    b64decode,
    check_dsse_body,
    check_hashedrekord_body,
    check_intoto_body,
    load_certificate,
    verify_certificate_at,
    verify_signature,
)
from gate.verify.sigstore import EvidenceError, SigstoreVerifier, statement_for, statement_type
from gate.verify.target import Target, unverified

UNVERIFIABLE = "unverifiable"
NO_TLOG = (
    "no transparency-log entry proves when it was signed, so nothing shows its 10-minute certificate was valid "
    "then (every other check passed: certificate chain, SCT, signature, subject); slsa-verifier and cosign look "
    "the entry up online: pass --rekor-url to let gate do so, or use evidence that carries it (a Sigstore "
    "bundle, cosign --bundle)"
)


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope as cosign and slsa-github-generator write it (exactly one signature)."""

    payload_type: str
    payload: bytes
    signature: bytes

    @classmethod
    def parse(cls, document: Any) -> Envelope:
        if not isinstance(document, dict) or not isinstance(document.get("payloadType"), str):
            raise CheckError("parse", "not a DSSE envelope")
        signatures = document.get("signatures")
        if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
            raise CheckError("parse", "a DSSE envelope must carry exactly one signature")
        return cls(document["payloadType"], b64decode(document.get("payload"), "the DSSE payload"),
                   b64decode(signatures[0].get("sig"), "the DSSE signature"))


@dataclass(frozen=True)
class Signed:
    """A certificate and what it signed: the blob (`signature` over the target's sha256) or an `envelope`."""

    cert: x509.Certificate
    signature: bytes | None = None
    envelope: Envelope | None = None

    def check_signature(self, target: Target) -> tuple[str | None, SlsaFacts]:
        """Verify the signature; for an envelope, also its statement for `target`. Returns the predicate
        type and the SLSA facts the certificate confirms."""
        if self.envelope is None:
            key = self.cert.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey) or self.signature is None:
                raise CheckError("signature", "the certificate's key is not an ECDSA key")
            try:
                key.verify(self.signature, bytes.fromhex(target.sha256), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            except InvalidSignature:
                message = "the signature is not over this file (or not by this certificate)"
                raise CheckError("signature", message) from None
            return None, SlsaFacts()
        envelope = self.envelope
        verify_signature(self.cert, envelope.signature, dsse._pae(envelope.payload_type, envelope.payload))
        statement = statement_for(envelope.payload_type, envelope.payload, target)
        claims = certificate_claims(self.cert)
        slsa = slsa_facts(statement, certificate_identity(self.cert), claims.get("issuer"), source_claims(self.cert))
        return statement_type(statement), slsa

    def check_body(self, entry: SignedEntry, target: Target) -> None:
        """The entry records this signature, this certificate and this artifact or payload."""
        body = entry.body()
        if self.envelope is None:
            assert self.signature is not None
            check_hashedrekord_body(body, target.sha256, self.signature, self.cert)
        elif body.get("kind") == "intoto":
            check_intoto_body(body, self.envelope.payload, [self.envelope.signature], self.cert)
        else:
            check_dsse_body(body, self.envelope.payload, [self.envelope.signature], self.cert)

    def lookup_key(self, target: Target) -> str:
        """What a log is searched by: the artifact's sha256, or the DSSE payload's."""
        if self.envelope is None:
            return target.sha256
        return hashlib.sha256(self.envelope.payload).hexdigest()


def verify_signed(
    signed: Signed, entry: SignedEntry | None, source: str, target: Target, verifier: SigstoreVerifier,
) -> AttestationFact:
    """Every check of signed material; `verified` only with a transparency-log entry (given, or found by the
    verifier's opted-in lookup). Never raises."""
    cert = signed.cert
    identity = certificate_identity(cert)
    claims = certificate_claims(cert)

    def fact(**fields: Any) -> AttestationFact:
        return AttestationFact(source=source, identity=identity, issuer=claims.get("issuer"), claims=claims,
                               publisher=publisher_from_claims(claims, identity), **fields)

    try:
        if entry is not None:
            _check_entry(signed, entry, target, verifier)
        else:
            verify_certificate_at(verifier.sigstore, cert, cert.not_valid_before_utc)
        predicate_type, slsa = signed.check_signature(target)
        if entry is None:
            entry, reason = _looked_up(signed, target, verifier)
            if entry is None:
                return fact(verified=False, error=f"{UNVERIFIABLE}: {reason}"[:500])
    except (CheckError, EvidenceError) as err:
        return fact(verified=False, error=str(err))
    except Exception as err:  # a library fault on hostile input must not crash gate: fail closed
        return fact(verified=False, error=f"internal: {type(err).__name__}: {err}"[:300])
    return fact(verified=True, predicateType=predicate_type, integratedTime=entry.when,
                signedTime=entry.when, **slsa._asdict())


def _check_entry(signed: Signed, entry: SignedEntry, target: Target, verifier: SigstoreVerifier) -> None:
    """The entry is the trusted log's (SET), the certificate was valid at its time, and it records `signed`."""
    entry.verify_set(verifier.sigstore._trusted_root)
    verify_certificate_at(verifier.sigstore, signed.cert, entry.when)
    signed.check_body(entry, target)


def _looked_up(signed: Signed, target: Target, verifier: SigstoreVerifier) -> tuple[SignedEntry | None, str]:
    """The first entry the verifier's opted-in log lookup gives that verifies for this evidence; none (or no
    lookup): None and why the evidence stays unverifiable."""
    lookup: EntryLookup | None = verifier.rekor_lookup
    if lookup is None:
        return None, NO_TLOG
    no_tlog = NO_TLOG.split(" (", maxsplit=1)[0]
    try:
        entries = lookup(signed.lookup_key(target))
    except EntryLookupError as err:
        return None, f"{no_tlog}; the transparency log lookup failed: {err}"
    reasons = []
    for entry in entries:
        try:
            _check_entry(signed, entry, target, verifier)
        except CheckError as err:
            reasons.append(str(err))
            continue
        return entry, ""
    found = f"; the log's {len(entries)} entries do not record it: {'; '.join(reasons)[:300]}" if entries else (
        "; the transparency log has no entry for it")
    return None, f"{no_tlog}{found}"


def _entry(rekor_bundle: Any) -> SignedEntry:
    """cosign's `rekorBundle` (also a `.rekor` file): {SignedEntryTimestamp, Payload: {body, integratedTime, ...}}."""
    if not isinstance(rekor_bundle, dict):
        raise CheckError("parse", "rekorBundle is not an object")
    return SignedEntry(rekor_bundle.get("Payload"), rekor_bundle.get("SignedEntryTimestamp"))


def is_cosign_bundle(document: Any) -> bool:
    return isinstance(document, dict) and "base64Signature" in document and "cert" in document


def is_plain_envelope(document: Any) -> bool:
    return isinstance(document, dict) and "payloadType" in document and "signatures" in document


def verify_cosign_bundle(document: dict[str, Any], source: str, target: Target,
                         verifier: SigstoreVerifier) -> AttestationFact:
    """`cosign sign-blob --bundle` / `attest-blob --bundle`: base64Signature (a signature, or a DSSE
    envelope), cert (base64 PEM), rekorBundle (the entry and its SET)."""
    try:
        cert = load_certificate(b64decode(document.get("cert"), "cert"))
        raw = b64decode(document.get("base64Signature"), "base64Signature")
        envelope = None
        if raw.startswith(b"{"):
            try:
                envelope = Envelope.parse(parse_json(raw, "the DSSE envelope"))
            except EvidenceParseError as err:
                raise CheckError("parse", str(err)) from None
        signed = Signed(cert, None if envelope else raw, envelope)
        entry = _entry(document.get("rekorBundle")) if document.get("rekorBundle") is not None else None
    except CheckError as err:
        return unverified(source, str(err))
    return verify_signed(signed, entry, source, target, verifier)


def verify_plain_envelope(document: dict[str, Any], source: str, target: Target,
                          verifier: SigstoreVerifier) -> AttestationFact:
    """A DSSE envelope whose signature carries its certificate (`signatures[0].cert`, PEM) and no log entry."""
    try:
        envelope = Envelope.parse(document)
        pem = document["signatures"][0].get("cert")
        if not isinstance(pem, str):
            raise CheckError("parse", "the envelope's signature carries no certificate")
        signed = Signed(load_certificate(pem.encode()), envelope=envelope)
    except CheckError as err:
        return unverified(source, str(err))
    return verify_signed(signed, None, source, target, verifier)


def verify_detached(
    signature: bytes, certificate: bytes, rekor: bytes | None, *, source: str, target: Target,
    verifier: SigstoreVerifier,
) -> AttestationFact:
    """A detached `.sig` (base64 DER ECDSA) and `.crt` (PEM), and the `.rekor` SET file when there is one."""
    try:
        sig = b64decode(signature.decode("ascii", "replace").strip(), "the .sig file")
        cert = load_certificate(certificate, "the .crt file")
        entry = None
        if rekor is not None:
            try:
                entry = _entry(parse_json(rekor, "the .rekor file"))
            except EvidenceParseError as err:
                raise CheckError("parse", str(err)) from None
    except CheckError as err:
        return unverified(source, str(err))
    return verify_signed(Signed(cert, signature=sig), entry, source, target, verifier)
