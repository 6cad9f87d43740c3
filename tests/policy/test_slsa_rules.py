"""`attestations.slsa`: slsa-verifier's options as policy keys, compiled to CEL (and its native form) over the
SLSA facts the verifier confirmed against the certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.errors import PolicyError
from gate.evaluate import evaluate
from gate.policy.compile import load_policy_text
from tests import factories as f

GENERIC = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml"
POLICY = """apiVersion: gate/v1
kind: Policy
metadata: {{name: p}}
spec:
  attestations:
    slsa: {slsa}
"""
PROVENANCE = {
    "sourceUri": "github.com/urllib3/urllib3", "sourceRef": "refs/tags/2.0.0", "sourceBranch": "refs/heads/main",
    "builderId": f"{GENERIC}@refs/tags/v1.5.0", "sourceDigest": "a" * 40,
}


def judged(slsa: str, **facts: Any) -> list[str]:
    policies = load_policy_text(POLICY.format(slsa=slsa))
    decision = evaluate(policies, f.facts(f.attestation(**(PROVENANCE | facts))), f.NOW)
    return [v.message for v in decision.violations]


@pytest.mark.parametrize(
    ("slsa", "facts", "allowed"),
    [
        ("{sourceUri: github.com/urllib3/urllib3}", {}, True),
        ("{sourceUri: https://github.com/urllib3/urllib3}", {}, True),  # as slsa-verifier normalises it
        ("{sourceUri: git+https://github.com/urllib3/urllib3}", {}, True),
        ("{sourceUri: github.com/urllib3/urllib3}", {"sourceUri": "github.com/urllib3/urllib3-evil"}, False),
        ("{sourceUri: github.com/urllib3/urllib3}", {"sourceUri": None}, False),  # not confirmed: never matches
        ("{sourceUri: 'github.com/urllib3/*'}", {}, True),
        ("{sourceTag: '2.0.0'}", {}, True),
        ("{sourceTag: '2.*'}", {}, True),
        ("{sourceTag: 'v*'}", {}, False),
        ("{sourceTag: '2.*'}", {"sourceRef": "refs/heads/2.0.0"}, False),  # a branch named like the tag
        ("{sourceTag: {regex: '2\\.[0-9]+\\.[0-9]+'}}", {}, True),
        ("{sourceTag: {regex: '2\\.[0-9]+'}}", {}, False),  # anchored, as every regex
        ("{sourceBranch: main}", {}, True),
        ("{sourceBranch: main}", {"sourceBranch": None}, False),
        ("{sourceBranch: dev}", {}, False),
        (f"{{builderId: '{GENERIC}'}}", {}, True),  # without @: any version, as --builder-id
        (f"{{builderId: '{GENERIC}@refs/tags/v1.5.0'}}", {}, True),
        (f"{{builderId: '{GENERIC}@refs/tags/v2.1.0'}}", {}, False),
        (f"{{builderId: '{GENERIC}'}}", {"builderId": GENERIC + ".evil@refs/tags/v1"}, False),
        (f"{{builderId: '{GENERIC}@refs/tags/v1.*'}}", {}, True),
        (f"{{builderId: '{GENERIC}'}}", {"builderId": None}, False),
        ("{sourceUri: github.com/urllib3/urllib3, sourceTag: '2.*', sourceBranch: main}", {}, True),
        ("{sourceUri: github.com/urllib3/urllib3, sourceTag: '3.*', sourceBranch: main}", {}, False),
    ],
)
def test_slsa_keys_judge_as_slsa_verifier_options(slsa: str, facts: dict[str, Any], allowed: bool) -> None:
    messages = judged(slsa, **facts)
    assert (not messages) is allowed, messages


def test_one_attestation_must_meet_every_key() -> None:
    """Two verified attestations each meeting one key are not provenance meeting both."""
    (policy,) = load_policy_text(POLICY.format(slsa="{sourceUri: github.com/a/b, sourceTag: 'v1'}"))
    one = f.attestation(**(PROVENANCE | {"sourceUri": "github.com/a/b", "sourceRef": "refs/tags/v2"}))
    other = f.attestation(**(PROVENANCE | {"sourceUri": "github.com/c/d", "sourceRef": "refs/tags/v1"}))
    assert [v.rule for v in evaluate([policy], f.facts(one, other), f.NOW).violations] == ["attestations.slsa"]


def test_the_slsa_provenance_must_come_from_an_allowed_signer() -> None:
    text = POLICY.format(slsa="{sourceUri: github.com/urllib3/urllib3}") + (
        f"    signers: [{{identity: '{GENERIC}@refs/tags/v2*', issuer: {f.GITHUB}}}]\n")
    (policy,) = load_policy_text(text)
    decision = evaluate([policy], f.facts(f.attestation(**PROVENANCE)), f.NOW)
    assert {v.rule for v in decision.violations} == {"attestations.signers", "attestations.slsa"}
    (slsa,) = [v for v in decision.violations if v.rule == "attestations.slsa"]
    assert slsa.message.startswith("no verified provenance from an allowed signer")
    signed = f.attestation(**PROVENANCE, identity=f"{GENERIC}@refs/tags/v2.1.0")
    assert evaluate([policy], f.facts(signed), f.NOW).violations == ()


def test_the_message_says_what_was_verified_and_what_is_asked() -> None:
    (message,) = judged("{sourceUri: github.com/urllib3/urllib3, sourceTag: 'v*'}")
    assert message == (
        f"verified provenance: source github.com/urllib3/urllib3 ref refs/tags/2.0.0 branch refs/heads/main "
        f"builder {(GENERIC + '@refs/tags/v1.5.0')[:97]}...; "
        "required SLSA provenance: sourceUri github.com/urllib3/urllib3, sourceTag v*"
    )
    violations = evaluate(load_policy_text(POLICY.format(slsa="{sourceTag: 'v*'}")), f.facts(), f.NOW).violations
    (unverified,) = [v for v in violations if v.rule == "attestations.slsa"]
    assert unverified.message == "no attestation; required SLSA provenance: sourceTag v*"


@pytest.mark.parametrize(
    ("slsa", "error"),
    [
        ("{}", "spec.attestations.slsa"),
        ("{sourceRepo: github.com/a/b}", "spec.attestations.slsa"),
        ("{sourceTag: ''}", "spec.attestations.slsa.sourceTag"),
        ("{sourceTag: {regex: '(?=v)'}}", "spec.attestations.slsa.sourceTag"),
        ("{builderId: 7}", "spec.attestations.slsa.builderId"),
    ],
)
def test_invalid_slsa_keys_are_policy_errors_with_their_path(slsa: str, error: str) -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(POLICY.format(slsa=slsa))
    assert any(issue.path.startswith(error) for issue in raised.value.issues), [str(i) for i in raised.value.issues]


def test_compiled_cel_is_standard_and_shown() -> None:
    (policy,) = load_policy_text(POLICY.format(slsa=f"{{sourceUri: github.com/a/b, builderId: '{GENERIC}'}}"))
    (rule,) = [r for r in policy.rules if r.name == "attestations.slsa"]
    assert rule.expression == (
        'attestations.exists(a, a.verified && a.sourceUri == "github.com/a/b" && (a.builderId != null && '
        'a.builderId.matches("^(?:https://github\\\\.com/slsa-framework/slsa-github-generator/\\\\.github/workflows/'
        'generator_generic_slsa3\\\\.yml(?:@refs/tags/v(?:0|[1-9][0-9]*)(?:\\\\.(?:0|[1-9][0-9]*)){2})?)$")))'
    )
    assert rule.native is not None


def _lint_warns(policy: str, code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> bool:
    """`gate lint` passes the policy (with one signer added) and whether it printed the warning `code`."""
    path = tmp_path / "p.yaml"
    path.write_text(policy + "    signers: [{identity: a@example.com, issuer: https://accounts.google.com}]\n")
    assert main(["lint", str(path)]) == 0
    out, err = capsys.readouterr()
    return f"[{code}]" in out + err


@pytest.mark.parametrize(("slsa", "warned"), [
    ("{sourceTag: 'v*'}", True),
    ("{sourceUri: 'github.com/*'}", True),
    ("{sourceUri: {regex: 'github\\.com/.*/urllib3'}}", True),
    ("{sourceUri: 'github.com/urllib3/*'}", False),
    ("{sourceUri: github.com/urllib3/urllib3}", False),
])
def test_lint_warns_of_slsa_without_one_source_repository(
    slsa: str, warned: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _lint_warns(POLICY.format(slsa=slsa), "slsa-any-source", tmp_path, capsys) is warned


@pytest.mark.parametrize(("types", "warned"), [
    ('["https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"]', True),
    ('["https://slsa.dev/provenance/v1"]', False),
    ('["https://slsa.dev/provenance/v1", "https://docs.pypi.org/attestations/publish/v1"]', False),
])
def test_lint_warns_of_predicate_types_no_single_provenance_has(
    types: str, warned: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's own example lists both SLSA versions: as `predicateTypes` asks for each, lint says so."""
    policy = POLICY.format(slsa="{sourceUri: github.com/urllib3/urllib3}") + f"    predicateTypes: {types}\n"
    assert _lint_warns(policy, "predicate-types-exclusive", tmp_path, capsys) is warned
