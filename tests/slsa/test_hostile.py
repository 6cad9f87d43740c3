"""Evidence made to look like the real thing: each check of `gate.verify.rekor_set` and `gate.verify.cosign`
is what rejects it, and nothing an outsider writes crashes gate or turns into verified evidence."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from gate.facts import Ecosystem
from gate.verify import evidence
from gate.verify.api import BundleVerifier, verify_detached, verify_evidence
from gate.verify.evidence import MAX_LINES
from gate.verify.sigstore import SigstoreVerifier
from gate.verify.target import Target
from tests.slsa.cases import SLSA_COSIGN

PRODUCTION = BundleVerifier(SLSA_COSIGN / "trust" / "sigstore-production-trusted_root.json")
LEGACY = SLSA_COSIGN / "cosign" / "sigstore-rs-artifact.txt.bundle"
ATTEST = SLSA_COSIGN / "cosign" / "dz_python_rekor_monitor-4.0.2-py3-none-any.whl.sbom-attestation.bundle"
INTOTO = SLSA_COSIGN / "slsa" / "gha_gradle-v2.1.0-workflow_dispatch.build.slsa"
ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
}
COSIGN_ARTIFACTS = SLSA_COSIGN / "artifacts" / "cosign"


def target_for(path: Path, ecosystem: Ecosystem = Ecosystem.GENERIC) -> Target:
    return Target(path.name, hashlib.sha256(path.read_bytes()).hexdigest(), ecosystem)


SOMETHING = target_for(SLSA_COSIGN / "artifacts" / "cosign" / "something.txt")
WHEEL = target_for(COSIGN_ARTIFACTS / "dz_python_rekor_monitor-4.0.2-py3-none-any.whl", Ecosystem.PYPI)
JAR = target_for(SLSA_COSIGN / "artifacts" / "slsa" / "workflow_dispatch-0.5.29.jar")


def malleate(signature: bytes, cert: x509.Certificate) -> bytes:
    """The other valid ECDSA signature of the same message by the same key: (r, n - s)."""
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, ORDERS[key.curve.name] - s)


def legacy_cert(document: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(document["cert"]))


def only(data: bytes, target: Target) -> tuple[bool, str]:
    (fact,) = verify_evidence(data, "test", target, PRODUCTION)
    return fact.verified, fact.error or ""


def test_the_real_legacy_bundle_verifies() -> None:
    assert only(LEGACY.read_bytes(), SOMETHING) == (True, "")


def test_a_log_entry_for_another_signature_is_not_evidence() -> None:
    """A valid signature (the malleated twin) with a valid SET over an entry recording the other one: every
    check but the entry body's passes, so the body check is what refuses it."""
    document = json.loads(LEGACY.read_bytes())
    signature = base64.b64decode(document["base64Signature"])
    document["base64Signature"] = base64.b64encode(malleate(signature, legacy_cert(document))).decode()
    verified, error = only(json.dumps(document).encode(), SOMETHING)
    assert not verified and error.startswith("tlog-body: the entry records another signature")


def test_a_dsse_entry_for_another_signature_is_not_evidence() -> None:
    document = json.loads(ATTEST.read_bytes())
    envelope = json.loads(base64.b64decode(document["base64Signature"]))
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    envelope["signatures"][0]["sig"] = base64.b64encode(malleate(sig, legacy_cert(document))).decode()
    document["base64Signature"] = base64.b64encode(json.dumps(envelope).encode()).decode()
    assert only(ATTEST.read_bytes(), WHEEL) == (True, "")
    verified, error = only(json.dumps(document).encode(), WHEEL)
    assert not verified and error.startswith("tlog-body: the entry records other signatures")


def test_an_intoto_entry_for_another_signature_is_not_evidence() -> None:
    """The intoto/0.0.2 route (which sigstore-python refuses): the inclusion proof covers the entry body, not
    the envelope, so only the body check binds the envelope's signature to the log."""
    bundle = json.loads(INTOTO.read_bytes())
    raw = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"]
    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    sig = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(malleate(sig, cert)).decode()
    assert only(INTOTO.read_bytes(), JAR) == (True, "")
    verified, error = only(json.dumps(bundle).encode(), JAR)
    assert not verified and error.startswith("tlog-body: the entry records other signatures")


def _legacy(**changes: Any) -> bytes:
    document = json.loads(LEGACY.read_bytes())
    for path, value in changes.items():
        node = document
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_legacy(cert="not base64!"), "parse: cert is not valid base64"),
        (_legacy(cert=base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").decode()),
         "parse: certificate is not an X.509 certificate"),
        (_legacy(base64Signature=7), "parse: base64Signature is not a base64 string"),
        (_legacy(rekorBundle__Payload__integratedTime=True), "parse: the Rekor entry's integratedTime"),
        (_legacy(rekorBundle__Payload__integratedTime=10**30), "parse: the Rekor entry's integratedTime"),
        (_legacy(rekorBundle__Payload__integratedTime=2**53 - 1), "tlog-set"),
        (_legacy(rekorBundle__Payload__logID="zz" * 32), "parse: the Rekor entry's logID"),
        (_legacy(rekorBundle__Payload__logID="00" * 32), "tlog-set"),
        (_legacy(rekorBundle__Payload__body="e30="), "tlog-set"),
        (_legacy(rekorBundle__SignedEntryTimestamp=""), "tlog-set"),
        (_legacy(rekorBundle=[]), "parse: rekorBundle is not an object"),
        (_legacy(base64Signature=base64.b64encode(b'{"payloadType": "x", "signatures": []}').decode()),
         "parse: a DSSE envelope must carry exactly one signature"),
        (_legacy(base64Signature=base64.b64encode(b"{" * 100).decode()), "parse: the DSSE envelope"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_hostile_legacy_bundles_are_refused_with_the_reason(data: bytes, error: str) -> None:
    verified, found = only(data, SOMETHING)
    assert not verified and found.startswith(error), found


def test_a_plain_envelope_without_its_certificate_is_refused() -> None:
    line = (SLSA_COSIGN / "slsa" / "annotated-tag.intoto.jsonl").read_bytes().splitlines()[0]
    envelope = json.loads(line)
    del envelope["signatures"][0]["cert"]
    verified, error = only(json.dumps(envelope).encode(), SOMETHING)
    assert not verified and error == "parse: the envelope's signature carries no certificate"


def test_json_lines_are_bounded() -> None:
    line = (SLSA_COSIGN / "slsa" / "annotated-tag.intoto.jsonl").read_bytes().splitlines()[0]
    many = b"\n".join([line] * (MAX_LINES + 1))
    facts = verify_evidence(many, "test", SOMETHING, PRODUCTION)
    assert len(facts) == 1 and not facts[0].verified and (facts[0].error or "").startswith("parse:")
    two = verify_evidence(line + b"\n" + line + b"\n", "test", SOMETHING, PRODUCTION)
    assert [f.source for f in two] == ["test#0", "test#1"] and not any(f.verified for f in two)


def test_lines_that_do_not_name_the_file_cost_no_signature_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A release's provenance covers other files: a line whose statement lacks this file's digest is refused
    before any crypto, and at most MAX_VERIFIED_LINES lines that do name it are verified."""
    line = (SLSA_COSIGN / "slsa" / "annotated-tag.intoto.jsonl").read_bytes().splitlines()[0]
    data = b"\n".join([line] * MAX_LINES)
    checked: list[str] = []
    real = evidence._document

    def counting(document: Any, source: str, target: Target, verifier: SigstoreVerifier) -> list[Any]:
        checked.append(source)
        return real(document, source, target, verifier)

    monkeypatch.setattr(evidence, "_document", counting)
    others = verify_evidence(data, "test", SOMETHING, PRODUCTION)
    assert checked == [] and len(others) == MAX_LINES
    assert all((f.error or "").startswith("subject-digest: no subject has this file's sha256") for f in others)
    named = verify_evidence(data, "test", target_for(SLSA_COSIGN / "artifacts" / "slsa" / "annotated-tag"), PRODUCTION)
    assert len(checked) == evidence.MAX_VERIFIED_LINES and len(named) == MAX_LINES
    skipped = sum((f.error or "").startswith("skipped: more than") for f in named)
    assert skipped == MAX_LINES - evidence.MAX_VERIFIED_LINES


def test_a_detached_pair_is_never_verified_without_a_log_entry() -> None:
    """The real a.txt pair checks in every other way: it stays unverifiable, never verified."""
    base = SLSA_COSIGN / "cosign" / "sigstore-python-a.txt"
    staging = BundleVerifier(SLSA_COSIGN / "trust" / "sigstore-staging-trusted_root.json")
    target = target_for(COSIGN_ARTIFACTS / "sigstore-python-a.txt")
    fact = verify_detached(base.with_suffix(".txt.sig").read_bytes(), base.with_suffix(".txt.crt").read_bytes(),
                           None, source="test", target=target, verifier=staging)
    assert not fact.verified and (fact.error or "").startswith("unverifiable: no transparency-log entry")
    assert fact.identity == "william@yossarian.net"


@pytest.mark.parametrize(("signature", "certificate", "error"), [
    (b"\xff\xfe", b"x", "parse: the .sig file is not valid base64"),
    (b"AAAA", b"x" * (64 << 10), "parse: the .crt file is larger than"),
    (b"AAAA", b"-----BEGIN CERTIFICATE-----\n", "parse: the .crt file is not an X.509 certificate"),
])
def test_hostile_detached_pairs(signature: bytes, certificate: bytes, error: str) -> None:
    fact = verify_detached(signature, certificate, None, source="t", target=SOMETHING, verifier=PRODUCTION)
    assert not fact.verified and (fact.error or "").startswith(error), fact.error
