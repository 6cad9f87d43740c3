"""Recognise an evidence document and verify every Sigstore bundle in it for one file.

Accepted: a PEP 740 provenance object (all its attestations), a PEP 740 attestation object, a Sigstore
bundle (message signature or DSSE), a conda `.sigs` sidecar (a JSON array of bundles), cosign's legacy
`--bundle`, a plain DSSE envelope with its certificate (`gate.verify.cosign`), and JSON Lines of any of
these one per line (slsa-github-generator's `*.intoto.jsonl`, at most MAX_LINES). Whatever
cannot be parsed becomes one `verified: false` fact that says why: evidence is an outsider's document, so
its size, encoding and nesting are bounded (`parse_json`) before pydantic or sigstore see it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import ValidationError
from pypi_attestations import Attestation, ConversionError, Provenance
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle

from gate.facts import AttestationFact
from gate.verify.bounded import EvidenceParseError, parse_json
from gate.verify.cosign import is_cosign_bundle, is_plain_envelope, verify_cosign_bundle, verify_plain_envelope
from gate.verify.sigstore import SigstoreVerifier
from gate.verify.target import Target, describe_error, unverified

MAX_LINES = 256  # envelopes in one JSON Lines file (a release's provenance has one or a few)
MAX_VERIFIED_LINES = 16  # of them verified for one file (as many attestations as rules read)


def _bundle(document: Any, source: str, target: Target, verifier: SigstoreVerifier) -> AttestationFact:
    """Verify one bundle document; a bundle that does not parse is an unverified fact of its own."""
    try:
        bundle = Bundle.from_json(json.dumps(document))
    except (SigstoreError, ValidationError, ValueError) as err:
        return unverified(source, f"parse: {describe_error(err)}")
    return verifier.verify(bundle, target, source)


def _pep740(att: Attestation, source: str, target: Target, verifier: SigstoreVerifier) -> AttestationFact:
    try:
        bundle = att.to_bundle()
    except (ConversionError, SigstoreError, ValueError) as err:
        return unverified(source, f"parse: {describe_error(err)}")
    return verifier.verify(bundle, target, source, pep740=True)


def _lines(data: bytes) -> list[Any] | None:
    """The documents of a JSON Lines file (None: it is not one: fewer than two lines that are all JSON)."""
    lines = [line for line in data.splitlines() if line.strip()]
    if len(lines) < 2 or len(lines) > MAX_LINES:
        return None
    try:
        return [parse_json(line) for line in lines]
    except EvidenceParseError:
        return None


def verify_evidence(data: bytes, source: str, target: Target, verifier: SigstoreVerifier) -> list[AttestationFact]:
    """One fact per bundle in `data`; whatever `data` is, never an exception."""
    try:
        document = parse_json(data)
    except EvidenceParseError as err:
        if (documents := _lines(data)) is None:
            return [unverified(source, f"parse: {err}")]
        return _json_lines(documents, source, target, verifier)
    return _document(document, source, target, verifier)


def _names_target(document: Any, target: Target) -> bool | None:
    """Whether a line's DSSE statement has a subject with the target's sha256 (None: it has no statement to
    read, or one that does not parse: the full verification says why), read before any signature is checked."""
    envelope = document.get("dsseEnvelope") if isinstance(document, dict) and "mediaType" in document else (
        document if is_plain_envelope(document) else None)
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, str):
        return None
    try:  # read here, not handed to a library: json alone (its own recursion guard), within the line's size
        statement = json.loads(base64.b64decode(payload, validate=True))
    except (ValueError, RecursionError):
        return None
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list):
        return None
    return any(isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get("sha256") == target.sha256
               for s in subjects)


def _json_lines(documents: list[Any], source: str, target: Target, verifier: SigstoreVerifier) -> list[AttestationFact]:
    """Each line's facts. A line whose statement does not name the file is refused before its signatures are
    checked (a release's provenance covers other files too), and at most MAX_VERIFIED_LINES lines are verified:
    a file of MAX_LINES envelopes costs seconds of crypto, and rules read at most 16 attestations anyway."""
    facts: list[AttestationFact] = []
    verified = 0
    for i, document in enumerate(documents):
        where = f"{source}#{i}"
        if _names_target(document, target) is False:
            facts.append(unverified(where, f"subject-digest: no subject has this file's sha256 {target.sha256}"))
        elif verified >= MAX_VERIFIED_LINES:
            why = f"skipped: more than {MAX_VERIFIED_LINES} lines may be evidence for this file"
            facts.append(unverified(where, why))
        else:
            verified += 1
            facts.extend(_document(document, where, target, verifier))
    return facts


def _document(document: Any, source: str, target: Target, verifier: SigstoreVerifier) -> list[AttestationFact]:
    try:
        if isinstance(document, list):
            if not document:
                return [unverified(source, "parse: empty list of bundles")]
            return [_bundle(d, f"{source}#{i}", target, verifier) for i, d in enumerate(document)]
        if not isinstance(document, dict):
            return [unverified(source, "parse: expected a JSON object or array")]
        if "attestation_bundles" in document:
            provenance = Provenance.model_validate(document)
            facts = [
                _pep740(att, f"{source}#{i}.{j}", target, verifier)
                for i, group in enumerate(provenance.attestation_bundles)
                for j, att in enumerate(group.attestations)
            ]
            return facts or [unverified(source, "parse: provenance holds no attestations")]
        if "envelope" in document and "verification_material" in document:
            return [_pep740(Attestation.model_validate(document), source, target, verifier)]
        if "mediaType" in document:
            return [_bundle(document, source, target, verifier)]
        if is_cosign_bundle(document):
            return [verify_cosign_bundle(document, source, target, verifier)]
        if is_plain_envelope(document):
            return [verify_plain_envelope(document, source, target, verifier)]
    except (ValidationError, SigstoreError, ValueError) as err:
        return [unverified(source, f"parse: {describe_error(err)}")]
    except Exception as err:  # a library fault on hostile input must not crash gate: fail closed
        return [unverified(source, f"internal: {describe_error(err)}")]
    return [unverified(source, "parse: not a Sigstore bundle, cosign bundle, DSSE envelope, PEP 740 attestation or "
                               "provenance object")]
