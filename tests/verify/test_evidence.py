"""Malformed or misplaced evidence becomes `verified: false` with a reason; it never raises."""

from __future__ import annotations

import json

import pytest

from gate.facts import Ecosystem
from gate.verify.api import BundleVerifier, verify_evidence
from gate.verify.sigstore import EvidenceError, check_statement
from gate.verify.target import Target
from tests.conftest import ATTESTATIONS

WHEEL = Target(
    filename="sampleproject-4.0.0-py3-none-any.whl",
    sha256="c23e447ea90d796d1e645c35c4b2de125040add12a845825546f91c93f391b6b",
    ecosystem=Ecosystem.PYPI,
)
CONDA_FILE = "signed-package-2.1.0-hb0f4dca_0.conda"
ATTESTATION = ATTESTATIONS / "pep740" / "sampleproject-4.0.0-py3-none-any.whl.publish.attestation"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xff\xfe garbage", "parse: evidence is not UTF-8"),
        (b"[]", "parse: empty list of bundles"),
        (b"42", "parse: expected a JSON object or array"),
        (b'{"hello": "world"}', "parse: not a Sigstore bundle, cosign bundle, DSSE envelope"),
        (b'{"version": 1, "attestation_bundles": []}', "parse: provenance holds no attestations"),
        (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}', "parse: "),
        (b'[{"mediaType": "nope"}]', "parse: "),
        (b'{"version": 1, "verification_material": {}, "envelope": {}}', "parse: "),
    ],
)
def test_malformed_evidence(data: bytes, error: str) -> None:
    (fact,) = verify_evidence(data, "test", WHEEL, BundleVerifier())
    assert not fact.verified and fact.error is not None and fact.error.startswith(error)


def test_real_attestation_verifies() -> None:
    (fact,) = verify_evidence(ATTESTATION.read_bytes(), "t", WHEEL, BundleVerifier())
    assert fact.verified, fact.error
    assert fact.publisher is not None and fact.publisher.repository == "pypa/sampleproject"


def test_attestation_for_another_file() -> None:
    other = Target(filename="sampleproject-4.0.0.tar.gz", sha256=WHEEL.sha256, ecosystem=Ecosystem.PYPI)
    (fact,) = verify_evidence(ATTESTATION.read_bytes(), "t", other, BundleVerifier())
    assert not fact.verified and fact.error and fact.error.startswith("subject-name")


def _statement(*subjects: tuple[str, str]) -> bytes:
    return json.dumps({"subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects]}).encode()


def test_pep740_statement_needs_exactly_one_subject() -> None:
    two = _statement((WHEEL.filename, WHEEL.sha256), ("other.whl", "00"))
    with pytest.raises(EvidenceError, match="expected exactly one subject, found 2"):
        check_statement(two, WHEEL, exactly_one_subject=True)
    assert check_statement(two, WHEEL, exactly_one_subject=False)["subject"]


@pytest.mark.parametrize(
    ("name", "ecosystem", "ok"),
    [
        ("sampleproject-4.0.0.0-py3-none-any.whl", Ecosystem.PYPI, True),  # same version under PEP 440
        ("SampleProject-4.0.0-py3-none-any.whl", Ecosystem.PYPI, True),  # same normalized name
        ("sampleproject-4.0.1-py3-none-any.whl", Ecosystem.PYPI, False),
        ("sampleproject-4.0.0-py2-none-any.whl", Ecosystem.PYPI, False),  # other tags
        (CONDA_FILE, Ecosystem.CONDA, True),
        ("Signed-Package-2.1.0-hb0f4dca_0.conda", Ecosystem.CONDA, False),  # conda compares the exact filename
        ("d.txt", Ecosystem.GENERIC, True),  # a generic file is bound by digest only
    ],
)
def test_subject_name_comparison(name: str, ecosystem: Ecosystem, ok: bool) -> None:
    filename = CONDA_FILE if ecosystem is Ecosystem.CONDA else WHEEL.filename
    target = Target(filename=filename, sha256=WHEEL.sha256, ecosystem=ecosystem)
    if ok:
        check_statement(_statement((name, WHEEL.sha256)), target, exactly_one_subject=True)
    else:
        with pytest.raises(EvidenceError, match="subject-name"):
            check_statement(_statement((name, WHEEL.sha256)), target, exactly_one_subject=True)


def test_library_fault_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = BundleVerifier()

    def boom(*args: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(verifier.engine._verifier, "verify_dsse", boom)
    (fact,) = verify_evidence(ATTESTATION.read_bytes(), "t", WHEEL, verifier)
    assert not fact.verified and fact.error == "internal: RuntimeError: unexpected"
