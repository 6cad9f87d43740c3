"""Signers are one of two types (an identity with its issuer, or a trusted publisher), and every place
that judges them (the compiler, lint, lock identities) branches on the type, never on an optional field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gate.policy import patterns
from gate.policy.compile import load_policy_text, signer_expression
from gate.policy.model import IdentitySigner, PublisherSigner
from gate.preinstall.identities import signer_allows
from tests.policy.lint.test_lint import lint_text

GITHUB = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/pypa/sampleproject/.github/workflows/release.yml"
SIGNERS = f"""
apiVersion: gate/v1
kind: Policy
metadata: {{name: p}}
spec:
  attestations:
    signers:
      - {{publisher: {{kind: GitHub, repository: pypa/sampleproject, workflow: release.yml}}}}
      - {{identity: "{WORKFLOW}@*", issuer: {GITHUB}}}
"""


def test_the_model_builds_one_type_per_kind_with_only_its_fields() -> None:
    (policy,) = load_policy_text(SIGNERS)
    assert policy.policy.attestations is not None
    publisher, identity = policy.policy.attestations.signers
    assert publisher == PublisherSigner(
        kind="GitHub",
        fields=(("repository", patterns.glob("pypa/sampleproject")), ("workflow", patterns.glob("release.yml"))),
    )
    assert identity == IdentitySigner(identity=patterns.glob(f"{WORKFLOW}@*"), issuer=patterns.glob(GITHUB))
    assert [f.name for f in dataclasses.fields(IdentitySigner)] == ["identity", "issuer"]
    assert [f.name for f in dataclasses.fields(PublisherSigner)] == ["kind", "fields"]
    with pytest.raises(TypeError):
        IdentitySigner(identity=patterns.glob("x"))  # type: ignore[call-arg]  # no issuer: not a signer
    with pytest.raises(TypeError):
        IdentitySigner(patterns.glob("x"), patterns.glob(GITHUB))  # type: ignore[call-arg]  # keywords only


def test_each_kind_compiles_and_judges_lock_identities_its_own_way() -> None:
    publisher = PublisherSigner(kind="GitHub", fields=(("repository", patterns.glob("pypa/*")),))
    identity = IdentitySigner(identity=patterns.glob(f"{WORKFLOW}@*"), issuer=patterns.glob(GITHUB))
    assert signer_expression(publisher) == '(a.publisher.kind == "GitHub" && (a.publisher.repository != null && ' \
        'a.publisher.repository.matches("^pypa/.*$")))'
    assert signer_expression(identity).startswith('((a.identity != null && a.identity.matches("^https://github')
    lock = {"kind": "GitHub", "repository": "pypa/sampleproject", "workflow": "release.yml"}
    assert signer_allows(publisher, lock) and signer_allows(identity, lock)
    assert not signer_allows(publisher, {**lock, "kind": "GitLab"})
    assert not signer_allows(identity, {**lock, "workflow": "other.yml"})


def test_lint_reports_one_finding_for_an_identity_that_cannot_match(tmp_path: Path) -> None:
    """An identity outside the issuer's URLs and without `@ref` is one mistake, reported once (the check
    for a missing ref was a second loop over the signers, and reported it twice)."""
    spec = f"attestations:\n  signers:\n    - {{issuer: {GITHUB}, identity: 'https://gitlab.com/pypa/x.yml'}}\n"
    findings = [f for f in lint_text(tmp_path, spec) if f.code == "signer"]
    (finding,) = findings
    assert finding.issue.message.startswith("identity 'https://gitlab.com/pypa/x.yml' can never match")
    assert "starting with https://github.com/" in finding.issue.message
    no_ref = f"attestations:\n  signers:\n    - {{issuer: {GITHUB}, identity: '{WORKFLOW}'}}\n"
    (finding,) = (f for f in lint_text(tmp_path, no_ref) if f.code == "signer")
    assert "name the workflow with its ref" in finding.issue.message and finding.level == "error"
