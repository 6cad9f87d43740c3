"""The checks sigstore-python 4.5 makes inside `Verifier`, for evidence its public API refuses although
everything needed is there: a Rekor v1 entry proven by its SignedEntryTimestamp (SET) alone (cosign's
legacy `--bundle`, a `.rekor` file, an entry looked up with `--rekor-url`), and a Rekor `intoto/0.0.2` entry
(slsa-github-generator's delegator builders), which `Verifier` rejects ("Integrated time only supported for
dsse/hashedrekord 0.0.1 types").

Each check is implemented once here, with the strictness of sigstore's own (`Verifier._verify_common_signing_cert`):
the certificate chains to the trusted root's Fulcio at the signed time and was valid then, carries a valid
SCT, is a code-signing certificate; the SET is the Rekor key's signature (the key the entry's logID names)
over the entry; the entry's body records exactly this signature, this certificate and this digest.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore import dsse
from sigstore._internal.sct import verify_sct
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import KeyringPurpose
from sigstore._utils import KeyID
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier

from gate.verify.bounded import EvidenceParseError, parse_json

MAX_CERTIFICATE_BYTES = 16 << 10  # a Fulcio leaf is 1-3 kB (PEM)


class CheckError(Exception):
    """A check that failed: `stage` names which (`cert-chain`, `tlog-set`, `tlog-body`, `signature` ...)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


def b64decode(text: Any, what: str) -> bytes:
    """Strict base64 of an outsider's field (a string, with padding); CheckError('parse') otherwise."""
    if not isinstance(text, str):
        raise CheckError("parse", f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckError("parse", f"{what} is not valid base64") from None


def load_certificate(data: bytes, what: str = "certificate") -> x509.Certificate:
    """A certificate as PEM or DER (cosign writes PEM, base64-encoded again inside its JSON)."""
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise CheckError("parse", f"{what} is larger than {MAX_CERTIFICATE_BYTES} bytes")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data.strip())
        return x509.load_der_x509_certificate(data)
    except ValueError as err:
        raise CheckError("parse", f"{what} is not an X.509 certificate: {err}") from None


def verify_certificate_at(verifier: Verifier, cert: x509.Certificate, when: dt.datetime) -> None:
    """The certificate was a valid Sigstore signing certificate at `when`: valid then, chains to the trusted
    root's Fulcio at that time, carries an SCT from a trusted CT log, and is a code-signing key."""
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise CheckError(
            "cert-validity",
            f"signed at {when.isoformat()}, outside the certificate's validity "
            f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}",
        )
    trusted_root: TrustedRoot = verifier._trusted_root
    try:
        chain = verifier._verify_chain_at_time(
            cert, TimestampVerificationResult(source=TimestampSource.TRANSPARENCY_SERVICE, time=when)
        )
    except SigstoreError as err:
        raise CheckError("cert-chain", str(err)[:200]) from None
    try:
        verify_sct(cert, chain, trusted_root.ct_keyring(KeyringPurpose.VERIFY))
    except SigstoreError as err:
        raise CheckError("sct", str(err)[:200]) from None
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as err:
        raise CheckError("cert-profile", f"not a Sigstore signing certificate: {err}") from None
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise CheckError("cert-profile", "not a code-signing certificate")


def verify_signature(cert: x509.Certificate, signature: bytes, data: bytes) -> None:
    """ECDSA (SHA-256, as Rekor's hashedrekord and dsse kinds record it) by the certificate's key."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CheckError("signature", "the certificate's key is not an ECDSA key")
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise CheckError("signature", "the signature does not verify with the certificate's key") from None


def check_log_key(trusted_root: TrustedRoot, log_id: bytes, when: dt.datetime) -> None:
    """The entry's logID names a transparency log of the trusted root, and its integrated time lies within
    that log key's validity (as sigstore-go checks; sigstore-python's keyring would try every key for an
    unknown logID and never looks at the validity): a retired or not-yet-valid log key vouches for nothing."""
    for tlog in trusted_root._inner.tlogs:
        if tlog.log_id.key_id != log_id:
            continue
        valid = tlog.public_key.valid_for
        if valid is not None and (when < valid.start or (valid.end is not None and when > valid.end)):
            end = valid.end.isoformat() if valid.end is not None else "open"
            raise CheckError("tlog-key", f"integrated at {when.isoformat()}, outside the validity of the log key "
                                         f"{log_id.hex()[:16]}... ({valid.start.isoformat()} to {end})")
        return
    raise CheckError("tlog-key", f"the entry's logID {log_id.hex()[:16]}... is no transparency log of the trusted root")


class SignedEntry:
    """A Rekor v1 entry as its SET signs it: `{body, integratedTime, logIndex, logID}` (cosign's
    `rekorBundle.Payload`, Rekor's `GET /api/v1/log/entries/{uuid}` value), and the SET."""

    def __init__(self, payload: Any, signed_entry_timestamp: Any) -> None:
        if not isinstance(payload, dict):
            raise CheckError("parse", "the Rekor entry is not an object")
        body, log_id = payload.get("body"), payload.get("logID")
        integrated: Any = payload.get("integratedTime")
        index: Any = payload.get("logIndex")
        if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**53 for n in (integrated, index)):
            raise CheckError("parse", "the Rekor entry's integratedTime and logIndex must be integers from 0 to 2^53")
        if not isinstance(log_id, str) or len(log_id) != 64:
            raise CheckError("parse", "the Rekor entry's logID must be 64 hex digits")
        try:
            self.log_id = bytes.fromhex(log_id)
        except ValueError:
            raise CheckError("parse", "the Rekor entry's logID must be 64 hex digits") from None
        self.body_text = body if isinstance(body, str) else ""
        self.body_bytes = b64decode(body, "the Rekor entry's body")
        self.integrated_time: int = integrated
        self.log_index: int = index
        self.log_id_hex: str = log_id
        self.set = b64decode(signed_entry_timestamp, "the SignedEntryTimestamp")

    @property
    def when(self) -> dt.datetime:
        try:
            return dt.datetime.fromtimestamp(self.integrated_time, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise CheckError("parse", f"integratedTime {self.integrated_time} is not a time") from None

    def verify_set(self, trusted_root: TrustedRoot) -> None:
        """The SET is the signature of the Rekor key named by logID (a key of the trusted root) over the
        RFC 8785 JSON of the entry: body, integratedTime, logIndex and logID are all bound by it; and that key
        was valid at the integrated time (`check_log_key`)."""
        signed = rfc8785.dumps({
            "body": self.body_text, "integratedTime": self.integrated_time, "logIndex": self.log_index,
            "logID": self.log_id_hex,
        })
        try:
            trusted_root.rekor_keyring(KeyringPurpose.VERIFY).verify(
                key_id=KeyID(self.log_id), signature=self.set, data=signed
            )
        except SigstoreError as err:
            raise CheckError("tlog-set", f"the SignedEntryTimestamp does not verify: {err}"[:300]) from None
        check_log_key(trusted_root, self.log_id, self.when)

    def body(self) -> dict[str, Any]:
        """The entry body (kind, apiVersion, spec), parsed within bounds."""
        return parse_body(self.body_bytes)


def parse_body(data: bytes) -> dict[str, Any]:
    """A Rekor entry body (kind, apiVersion, spec), parsed within bounds; CheckError('tlog-body') otherwise."""
    try:
        document = parse_json(data, "the Rekor entry body")
    except EvidenceParseError as err:
        raise CheckError("tlog-body", str(err)) from None
    if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
        raise CheckError("tlog-body", "the Rekor entry body has no spec")
    return document


# A lookup in a transparency log the user opted into (`--rekor-url`, `gate.sources.rekor`): the entries that
# may record evidence that came without one, found by the sha256 of the artifact (hashedrekord) or of the
# DSSE payload; each is verified as if it had come with the evidence. A lookup that fails raises
# EntryLookupError (and the evidence stays unverifiable, saying why).
EntryLookup = Callable[[str], list["SignedEntry"]]


class EntryLookupError(Exception):
    """The transparency log could not be asked, or answered with something that is not a list of entries."""


def get_path(document: Any, *keys: str) -> Any:
    """`document[k1][k2]...` of a parsed JSON document; None where a level is missing or not an object."""
    for key in keys:
        document = document.get(key) if isinstance(document, dict) else None
    return document


def _kind(body: dict[str, Any]) -> str:
    return f"{str(body.get('kind'))[:40]}/{str(body.get('apiVersion'))[:20]}"


def _same_certificate(encoded: Any, cert: x509.Certificate, what: str) -> None:
    if load_certificate(b64decode(encoded, what), what) != cert:
        raise CheckError("tlog-body", f"{what} is not the evidence's certificate")


def check_hashedrekord_body(body: dict[str, Any], sha256: str, signature: bytes, cert: x509.Certificate) -> None:
    """A `hashedrekord/0.0.1` body records this artifact digest, this signature and this certificate."""
    if (body.get("kind"), body.get("apiVersion")) != ("hashedrekord", "0.0.1"):
        raise CheckError("tlog-body", f"expected a hashedrekord/0.0.1 entry, got {_kind(body)}")
    spec = body["spec"]
    if get_path(spec, "data", "hash", "algorithm") != "sha256" or get_path(spec, "data", "hash", "value") != sha256:
        raise CheckError("tlog-body", "the entry records another artifact digest")
    if b64decode(get_path(spec, "signature", "content"), "the entry's signature") != signature:
        raise CheckError("tlog-body", "the entry records another signature")
    _same_certificate(get_path(spec, "signature", "publicKey", "content"), cert, "the entry's public key")


def check_dsse_body(body: dict[str, Any], payload: bytes, signatures: Iterable[bytes], cert: x509.Certificate) -> None:
    """A `dsse/0.0.1` body records sha256(payload), these signatures and this certificate as verifier."""
    if (body.get("kind"), body.get("apiVersion")) != ("dsse", "0.0.1"):
        raise CheckError("tlog-body", f"expected a dsse/0.0.1 entry, got {_kind(body)}")
    spec = body["spec"]
    if get_path(spec, "payloadHash", "algorithm") != "sha256" or (
        get_path(spec, "payloadHash", "value") != hashlib.sha256(payload).hexdigest()
    ):
        raise CheckError("tlog-body", "the entry records another payload")
    recorded = spec.get("signatures")
    if not isinstance(recorded, list) or not recorded:
        raise CheckError("tlog-body", "the entry records no signatures")
    if {b64decode(get_path(s, "signature"), "the entry's signature") for s in recorded} != set(signatures):
        raise CheckError("tlog-body", "the entry records other signatures than the envelope's")
    for entry in recorded:
        _same_certificate(get_path(entry, "verifier"), cert, "the entry's verifier")


def check_intoto_body(
    body: dict[str, Any], payload: bytes, signatures: Iterable[bytes], cert: x509.Certificate
) -> None:
    """An `intoto/0.0.2` body records sha256(payload), these signatures (base64 of base64, as Rekor keeps
    them) and this certificate as each signature's public key."""
    if (body.get("kind"), body.get("apiVersion")) != ("intoto", "0.0.2"):
        raise CheckError("tlog-body", f"expected an intoto/0.0.2 entry, got {_kind(body)}")
    content = body["spec"].get("content")
    if get_path(content, "payloadHash", "algorithm") != "sha256" or (
        get_path(content, "payloadHash", "value") != hashlib.sha256(payload).hexdigest()
    ):
        raise CheckError("tlog-body", "the entry records another payload")
    recorded = get_path(content, "envelope", "signatures")
    if not isinstance(recorded, list) or not recorded:
        raise CheckError("tlog-body", "the entry records no signatures")
    decoded = {b64decode(b64decode(get_path(s, "sig"), "the entry's signature").decode("ascii", "replace"),
                         "the entry's signature") for s in recorded}
    if decoded != set(signatures):
        raise CheckError("tlog-body", "the entry records other signatures than the envelope's")
    for entry in recorded:
        _same_certificate(get_path(entry, "publicKey"), cert, "the entry's public key")


def signed_times(verifier: Verifier, bundle: Bundle) -> list[dt.datetime]:
    """Every verified time of the signature, as sigstore's `Verifier._establish_time` takes them: the RFC 3161
    timestamps the bundle carries (each verified against the trusted root's timestamp authorities) and the
    log's integrated time (bound by the SET)."""
    times = []
    if bundle.verification_material.timestamp_verification_data:
        if not verifier._trusted_root.get_timestamp_authorities():
            raise CheckError("tsa", "the bundle has a signed timestamp, but the trusted root no timestamp authority")
        try:
            times += [result.time for result in verifier._verify_timestamp_authority(bundle)]
        except SigstoreError as err:
            raise CheckError("tsa", str(err)[:200]) from None
    times.append(dt.datetime.fromtimestamp(int(bundle.log_entry._inner.integrated_time or 0), dt.UTC))
    return times


def verify_intoto_bundle(verifier: Verifier, bundle: Bundle) -> tuple[str, bytes, dt.datetime]:
    """`Verifier.verify_dsse` for a bundle whose Rekor entry is `intoto/0.0.2`: the inclusion proof, signed
    checkpoint and SET (`LogEntry._verify`, as sigstore runs it), the certificate at the SET-bound integrated
    time, the DSSE signature, and the entry body. Returns (payloadType, payload, the earliest verified time)."""
    entry = bundle.log_entry
    inner = entry._inner
    if (inner.kind_version.kind, inner.kind_version.version) != ("intoto", "0.0.2"):
        raise CheckError("tlog", f"not an intoto/0.0.2 entry: {inner.kind_version.kind}/{inner.kind_version.version}")
    if not inner.integrated_time or inner.inclusion_promise is None:
        raise CheckError("tlog", "the entry has no SignedEntryTimestamp binding its integrated time")
    envelope = bundle._dsse_envelope
    if envelope is None:
        raise CheckError("parse", "the bundle has no DSSE envelope")
    trusted_root: TrustedRoot = verifier._trusted_root
    try:
        entry._verify(trusted_root.rekor_keyring(KeyringPurpose.VERIFY))
    except SigstoreError as err:
        raise CheckError("tlog", f"invalid log entry: {err}"[:300]) from None
    check_log_key(trusted_root, inner.log_id.key_id, dt.datetime.fromtimestamp(inner.integrated_time, dt.UTC))
    cert = bundle.signing_certificate
    times = signed_times(verifier, bundle)
    for when in times:
        verify_certificate_at(verifier, cert, when)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CheckError("signature", "the certificate's key is not an ECDSA key")
    try:
        dsse._verify(key, envelope)
    except SigstoreError as err:
        raise CheckError("signature", f"DSSE: {err}"[:300]) from None
    statement = envelope._inner
    signatures = [s.sig for s in statement.signatures]
    check_intoto_body(parse_body(inner.canonicalized_body), statement.payload, signatures, cert)
    return statement.payload_type, statement.payload, min(times)
