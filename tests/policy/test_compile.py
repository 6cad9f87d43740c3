"""Each structured field compiles to a named CEL rule that reaches the right verdict."""

from __future__ import annotations

import datetime as dt

import pytest

from gate.decision import Verdict
from gate.evaluate import evaluate
from gate.facts import AttestationFact, Ecosystem, Facts, FileKind, Publisher
from gate.policy.compile import CompiledPolicy, load_policy_text
from gate.policy.model import STRUCTURED_RULES
from tests import factories as f

HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"


def policy(spec: str) -> list[CompiledPolicy]:
    return load_policy_text(HEADER + "".join(f"  {line}\n" for line in spec.strip().splitlines()))


def failed(spec: str, facts: Facts, now: dt.datetime = f.NOW) -> list[str]:
    return [v.rule for v in evaluate(policy(spec), facts, now).violations]


def test_rule_names_and_standard_cel() -> None:
    (compiled,) = policy(
        """
minimumAge: 7d
attestations:
  predicateTypes: [https://docs.pypi.org/attestations/publish/v1]
  signers: [{publisher: {kind: GitHub, repository: pypa/*}}]
  targetChannel: match
  slsa: {sourceUri: github.com/pypa/sampleproject}
vulnerabilities: {maxSeverity: medium}
rules: [{name: no-yanked, expression: '!file.yanked', message: no yanked}]
"""
    )
    names = [r.name for r in compiled.rules]
    assert names == [
        "minimumAge",
        "attestations.required",
        "attestations.signers",
        "attestations.predicateTypes",
        "attestations.targetChannel",
        "attestations.slsa",
        "vulnerabilities.malicious",
        "vulnerabilities.maxSeverity",
        "no-yanked",
    ]
    trust = {"continuity", "minimumAge.backdating"}  # compiled in tests/continuity/test_policy.py
    assert set(names) - {"no-yanked"} == set(STRUCTURED_RULES) - trust  # what `waive` may name is what is compiled
    assert compiled.rules[0].expression == 'file.uploaded != null && now - file.uploaded >= duration("604800s")'


@pytest.mark.parametrize(
    ("age", "uploaded_days_ago", "fails"),
    [("7d", 30, False), ("7d", 6, True), ("36h", 1, True), ("36h", 2, False), ("P7D", 7, False)],
)
def test_minimum_age(age: str, uploaded_days_ago: int, fails: bool) -> None:
    facts = f.facts(uploaded=f.NOW - dt.timedelta(days=uploaded_days_ago))
    assert (failed(f"minimumAge: {age}", facts) == ["minimumAge"]) is fails


def test_minimum_age_unknown_upload_time() -> None:
    unknown = f.facts(uploaded=None)
    assert failed("minimumAge: 7d", unknown) == ["minimumAge"]
    assert failed("minimumAge: {age: 7d, whenUnknown: allow}", unknown) == []
    assert failed("minimumAge: {age: 7d, whenUnknown: deny}", unknown) == ["minimumAge"]


def test_now_moves_the_verdict() -> None:
    facts = f.facts(uploaded=f.NOW - dt.timedelta(days=3))
    assert failed("minimumAge: 7d", facts) == ["minimumAge"]
    assert failed("minimumAge: 7d", facts, f.NOW + dt.timedelta(days=5)) == []


def test_required_needs_a_verified_attestation() -> None:
    spec = "attestations: {required: true}"
    assert failed(spec, f.facts()) == ["attestations.required"]
    assert failed(spec, f.facts(f.attestation(verified=False, error="sigstore: bad"))) == ["attestations.required"]
    assert failed(spec, f.facts(f.attestation())) == []


@pytest.mark.parametrize(
    ("signer", "allowed"),
    [
        ("{publisher: {kind: GitHub, repository: pypa/sampleproject}}", True),
        ("{publisher: {kind: GitHub, repository: pypa/*, workflow: release.yml}}", True),
        ("{publisher: {kind: GitHub, repository: pypa/*, workflow: publish.yml}}", False),
        ("{publisher: {kind: GitHub, repository: pypa/sampleproject, environment: pypi}}", False),
        ("{publisher: {kind: GitLab, repository: pypa/sampleproject}}", False),
        ("{publisher: {kind: GitHub, repository: {regex: 'pypa/sample.*'}}}", True),
        ("{publisher: {kind: GitHub, repository: {regex: 'sample.*'}}}", False),  # anchored
        ("{identity: 'https://github.com/pypa/*', issuer: https://token.actions.githubusercontent.com}", True),
        ("{identity: 'https://github.com/pypa/*', issuer: https://accounts.google.com}", False),
        ("{identity: 'https://github.com/pallets/*', issuer: https://token.actions.githubusercontent.com}", False),
    ],
)
def test_signers(signer: str, allowed: bool) -> None:
    result = failed(f"attestations: {{signers: [{signer}]}}", f.facts(f.attestation()))
    assert ("attestations.signers" not in result) is allowed


def test_environment_matches_when_certificate_carries_it() -> None:
    att = f.attestation(publisher=Publisher(kind="GitHub", repository="a/b", workflow="r.yml", environment="pypi"))
    spec = "attestations: {signers: [{publisher: {kind: GitHub, repository: a/b, environment: %s}}]}"
    assert failed(spec % "pypi", f.facts(att)) == []
    assert failed(spec % "release", f.facts(att)) == ["attestations.signers"]


def test_unverified_attestation_never_satisfies_a_signer() -> None:
    spec = "attestations: {signers: [{publisher: {kind: GitHub, repository: pypa/*}}]}"
    bad = f.attestation(verified=False, error="sigstore: DSSE: invalid signature")
    assert failed(spec, f.facts(bad)) == ["attestations.required", "attestations.signers"]


def test_any_one_signer_suffices() -> None:
    spec = (
        "attestations: {signers: [{publisher: {kind: GitHub, repository: x/y}},"
        " {publisher: {kind: Google, email: '*@example.com'}}]}"
    )
    google = f.attestation(publisher=Publisher(kind="Google", email="ci@example.com"), identity="ci@example.com")
    assert failed(spec, f.facts(google)) == []
    assert failed(spec, f.facts(f.attestation())) == ["attestations.signers"]


def test_predicate_types_each_required_from_allowed_signer() -> None:
    slsa = "https://slsa.dev/provenance/v1"
    spec = f"attestations: {{predicateTypes: [{f.PUBLISH}, {slsa}]}}"
    assert failed(spec, f.facts(f.attestation())) == ["attestations.predicateTypes"]
    assert failed(spec, f.facts(f.attestation(), f.attestation(predicateType=slsa))) == []
    with_signer = (
        f"attestations: {{predicateTypes: [{slsa}], signers: [{{publisher: {{kind: GitHub, repository: a/b}}}}]}}"
    )
    other = f.attestation(predicateType=slsa)  # from pypa/sampleproject, not a/b
    assert "attestations.predicateTypes" in failed(with_signer, f.facts(other))


def test_optional_attestations_judge_only_when_present() -> None:
    spec = "attestations: {required: false, signers: [{publisher: {kind: GitHub, repository: a/b}}]}"
    assert failed(spec, f.facts()) == []
    assert failed(spec, f.facts(f.attestation())) == ["attestations.signers"]


def conda_facts(channel: str | None, target: str | None) -> Facts:
    att: AttestationFact = f.attestation(
        predicateType="https://schemas.conda.org/attestations-publish-1.schema.json", targetChannel=target
    )
    return f.facts(att, ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, filename="x-1-0.conda", name="x", index=channel)


def test_target_channel() -> None:
    match = "attestations: {targetChannel: match}"
    assert failed(match, conda_facts("https://c.example/ch", "https://c.example/ch")) == []
    assert failed(match, conda_facts("https://c.example/ch", "https://c.example/other")) == [
        "attestations.targetChannel"
    ]
    fixed = "attestations: {targetChannel: 'https://c.example/ch/'}"
    assert failed(fixed, conda_facts(None, "https://c.example/ch")) == []
    assert failed(match, f.facts(f.attestation())) == []  # not a conda file: not judged
    # an unknown channel never matches, not even an attestation without targetChannel
    assert failed(match, conda_facts(None, None)) == ["attestations.targetChannel"]


def test_custom_rule_errors_fail_closed() -> None:
    """A rule that type-checks but errors on these facts (no attestation to index) denies."""
    spec = "rules: [{name: first, expression: 'attestations[0].identity == \"x\"', message: m}]"
    result = evaluate(policy(spec), f.facts(), f.NOW)
    assert result.verdict is Verdict.DENY
    assert "could not be evaluated" in result.violations[0].message


def test_has_yields_a_bool() -> None:
    """cel-python's has() yields a Python bool: a rule that is just has() passes, not "must yield a bool"."""
    result = evaluate(policy("rules: [{name: n, expression: 'has(file.size)', message: m}]"), f.facts(), f.NOW)
    assert result.verdict is Verdict.ALLOW


def test_custom_rule_over_attestations() -> None:
    expression = 'attestations.all(a, a.claims.runnerEnvironment == \"github-hosted\")'
    spec = f"rules: [{{name: hosted, expression: '{expression}', message: m}}]"
    hosted = f.attestation(claims={"runnerEnvironment": "github-hosted"})
    assert failed(spec, f.facts(hosted)) == []
    assert failed(spec, f.facts(f.attestation(claims={"runnerEnvironment": "self-hosted"}))) == ["hosted"]
