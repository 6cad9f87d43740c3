"""Every real case of both slsa-cosign manifests, verified through gate's verify layer (with discovery of the
detached .crt/.rekor beside a .sig): the stage the manifest names, and the facts the certificate confirms."""

from __future__ import annotations

import base64
import json

import pytest

from gate.facts import AttestationFact
from gate.sources.local import LocalOptions, local_facts
from gate.verify.api import BundleVerifier
from gate.verify.intoto import checked_facts
from gate.verify.rekor_set import CheckError
from tests.slsa.cases import CASES, Case


def facts_of(case: Case) -> list[AttestationFact]:
    options = LocalOptions(attestations=tuple(case.evidence), verifier=BundleVerifier(case.trusted_root))
    return list(local_facts(case.artifact, options).attestations)


def outcome(fact: AttestationFact) -> str:
    if fact.verified:
        return "pass"
    return "unverifiable" if (fact.error or "").startswith("unverifiable:") else "fail"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_verifies_as_the_manifest_says(case: Case) -> None:
    facts = facts_of(case)
    assert facts, "no evidence found"
    want = "pass" if case.policy_level else case.expected
    assert [outcome(f) for f in facts] == [want], [f.error for f in facts]
    (fact,) = facts
    expected = case.raw["expected"]
    if want == "fail":
        assert fact.error
        return
    if not case.policy_only:  # (a policy case's policy names another signer)
        assert (fact.identity, fact.issuer) == (expected["san"], expected["issuer"])
    if want == "unverifiable":
        assert "no transparency-log entry" in (fact.error or "")
        return
    if "predicate_type" in expected:
        assert fact.predicateType == expected["predicate_type"]
    if "integrated_time" in expected:
        assert fact.integratedTime is not None and int(fact.integratedTime.timestamp()) == expected["integrated_time"]
    # every verified format carries the time its verification established (minimumAge's transparencyLog source):
    # the SET-bound integrated time, or an earlier RFC 3161 time
    assert fact.signedTime is not None and fact.integratedTime is not None
    assert fact.signedTime <= fact.integratedTime
    if case.raw["format"] == "slsa-provenance" and "builder_id_claimed_in_predicate" not in expected:
        # SLSA facts, each confirmed by the certificate (not those of the wrong signer's lying predicate)
        assert fact.sourceUri is not None and fact.sourceRef is not None and fact.builderId is not None
        shown = {"source_repository_uri": "https://" + fact.sourceUri, "source_ref": fact.sourceRef,
                 "source_digest": fact.sourceDigest, "builder_id": fact.builderId}
        assert {k: v for k, v in shown.items() if k in expected} == {k: expected[k] for k in shown if k in expected}


def test_a_predicate_the_certificate_contradicts_gives_no_slsa_facts() -> None:
    """slsa-verifier's real wrong-signer case: the predicate claims aspect-build/rules_lint built by
    publish-to-bcr, the certificate says loosebazooka/aa-test. The signature is real (its signer is a fact a
    signer rule judges), but none of the predicate's claims reach a policy."""
    (case,) = [c for c in CASES if c.id == "slsa-bcr-module-bazel-wrong-signer"]
    (fact,) = facts_of(case)
    assert fact.verified and fact.identity == case.raw["expected"]["san"]
    assert (fact.builderId, fact.sourceUri, fact.sourceRef, fact.sourceDigest) == (None, None, None, None)
    envelope = json.loads(case.evidence[0].read_bytes())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    with pytest.raises(CheckError, match="provenance: the predicate's source repository"):
        certified = {"sourceRepositoryUri": fact.claims["sourceRepositoryUri"]}
        checked_facts(statement, fact.identity, fact.issuer, certified)


def test_workflow_inputs_of_a_delegated_build_are_facts() -> None:
    (case,) = [c for c in CASES if c.id == "slsa-gradle-v2.1.0-intoto002-workflow_dispatch"]
    (fact,) = facts_of(case)
    assert fact.verified and fact.workflowInputs["jdk-version"] == "17"
    assert fact.workflowInputs["rekor-log-public"] == "false"
    assert fact.sourceBranch == "refs/heads/main"


def test_a_tag_build_names_the_branch_it_was_pushed_from() -> None:
    (case,) = [c for c in CASES if c.id == "slsa-generic-v2.1.0-bundle-push-v14"]
    (fact,) = facts_of(case)
    assert fact.sourceRef == "refs/tags/v14" and fact.sourceBranch == "refs/heads/main"
