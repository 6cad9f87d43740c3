"""Rules see verified evidence only: an attestation that failed verification keeps the identity, issuer,
publisher, claims and predicate type its maker chose, so no rule (structured or raw CEL) may read them.
The report still lists every rejected bundle with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msgspec.structs import replace

from gate.cli import main
from gate.decision import Verdict
from gate.evaluate import Evaluator, evaluate
from gate.facts import Publisher
from gate.policy.compile import CompiledPolicy, load_policy_text
from gate.sources.local import LocalOptions, local_facts
from tests import factories as f
from tests.conftest import ATTESTATIONS

WHEEL = ATTESTATIONS / "dists" / "sampleproject-4.0.0-py3-none-any.whl"
ATTESTATION = ATTESTATIONS / "pep740" / (WHEEL.name + ".publish.attestation")
UPLOADED = "2024-11-06T22:37:09Z"

# Rules a policy author might write without `a.verified`: each is true of the forged evidence below.
FORGEABLE = [
    'attestations.exists(a, a.publisher.repository == "pypa/sampleproject")',
    'attestations.exists(a, a.identity.startsWith("https://github.com/pypa/"))',
    'attestations.exists(a, a.issuer == "https://token.actions.githubusercontent.com")',
    'attestations.exists(a, a.predicateType == "https://docs.pypi.org/attestations/publish/v1")',
    'attestations.exists(a, "sourceRepositoryUri" in a.claims)',
    "size(attestations) > 0",
    "attestations.exists(a, !a.verified)",
]


def _policy(expression: str) -> str:
    return (
        "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: custom}\nspec:\n"
        f"  rules:\n    - name: from-pypa\n      expression: '{expression}'\n      message: not from pypa\n"
    )


def _compiled(expression: str) -> list[CompiledPolicy]:
    return load_policy_text(_policy(expression))


FORGED = f.attestation(
    verified=False,
    error="sigstore: forged certificate",
    claims={"sourceRepositoryUri": "https://github.com/pypa/sampleproject"},
    publisher=Publisher(kind="GitHub", repository="pypa/sampleproject", workflow="release.yml"),
)


@pytest.mark.parametrize("expression", FORGEABLE)
def test_unverified_evidence_satisfies_no_raw_rule(expression: str) -> None:
    compiled = _compiled(expression)
    forged = f.facts(FORGED)
    assert evaluate(compiled, forged, f.NOW).verdict is Verdict.DENY
    assert Evaluator(compiled).judge(forged, f.NOW).decision.verdict is Verdict.DENY
    # the same rule over the same evidence, verified, allows (the rule is not simply wrong)
    if "!a.verified" not in expression:
        genuine = f.facts(replace(FORGED, verified=True, error=None))
        assert evaluate(compiled, genuine, f.NOW).verdict is Verdict.ALLOW
        assert Evaluator(compiled).judge(genuine, f.NOW).decision.verdict is Verdict.ALLOW


def test_memo_does_not_carry_a_verified_outcome_to_unverified_evidence() -> None:
    """The proxy's memo keys on what the rule sees: an unverified copy of evidence that once allowed a file
    must not hit that memo entry."""
    evaluator = Evaluator(_compiled(FORGEABLE[0]))
    genuine = f.facts(replace(FORGED, verified=True, error=None))
    assert evaluator.judge(genuine, f.NOW).decision.verdict is Verdict.ALLOW
    assert evaluator.judge(f.facts(FORGED), f.NOW).decision.verdict is Verdict.DENY
    # unverified evidence beside verified evidence changes nothing the rules see
    both = f.facts(replace(FORGED, verified=True, error=None), FORGED)
    assert evaluator.judge(both, f.NOW).decision.verdict is Verdict.ALLOW


def _tampered(tmp_path: Path) -> Path:
    """The real wheel's name with other bytes, beside pypa's real attestation (for the real bytes)."""
    bad = tmp_path / WHEEL.name
    bad.write_bytes(WHEEL.read_bytes() + b"\0")
    (tmp_path / ATTESTATION.name).write_bytes(ATTESTATION.read_bytes())
    return bad


def test_real_attestation_for_other_bytes_is_not_seen_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _tampered(tmp_path)
    policy = tmp_path / "custom.yaml"
    policy.write_text(_policy(FORGEABLE[0]), encoding="utf-8")
    code = main(["check", str(bad), "-p", str(policy), "--uploaded", UPLOADED, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["verdict"] == "deny"
    (result,) = report["results"]
    assert [v["rule"] for v in result["violations"]] == ["from-pypa"]
    # the report keeps the rejected bundle, with what it claimed and why it was rejected
    (att,) = result["attestations"]
    assert att["verified"] is False and att["error"].startswith("subject-digest:")
    assert att["publisher"]["repository"] == "pypa/sampleproject"


def test_real_attestation_for_other_bytes_is_not_seen_by_the_proxy_evaluator(tmp_path: Path) -> None:
    facts = local_facts(_tampered(tmp_path), LocalOptions())
    (att,) = facts.attestations
    assert not att.verified and att.publisher is not None  # what the certificate says, kept for the report
    assert Evaluator(_compiled(FORGEABLE[0])).judge(facts, f.NOW).decision.verdict is Verdict.DENY
    genuine = local_facts(WHEEL, LocalOptions(attestations=(ATTESTATION,)))
    assert Evaluator(_compiled(FORGEABLE[0])).judge(genuine, f.NOW).decision.verdict is Verdict.ALLOW
