"""Decisions: every matching policy must allow; exceptions, expiry, audit mode."""

from __future__ import annotations

import datetime as dt

from gate.decision import Decision, Verdict
from gate.evaluate import evaluate
from gate.facts import Ecosystem, FileKind
from gate.policy.compile import CompiledPolicy, load_policy_text
from tests import factories as f


def policies(*docs: str) -> list[CompiledPolicy]:
    return load_policy_text("\n---\n".join(docs))


def doc(name: str, spec: str) -> str:
    return f"apiVersion: gate/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n" + "".join(
        f"  {line}\n" for line in spec.strip().splitlines()
    )


YOUNG = f.facts(uploaded=f.NOW - dt.timedelta(days=1))


def test_every_matching_policy_must_allow() -> None:
    both = policies(doc("age", "minimumAge: 1h"), doc("att", "attestations: {required: true}"))
    decision = evaluate(both, YOUNG, f.NOW)
    assert decision.verdict is Verdict.DENY
    assert [(v.policy, v.rule) for v in decision.violations] == [("att", "attestations.required")]
    assert decision.policies == ("age", "att")


def _unmatched(decision: Decision) -> bool:
    """Whether the decision is the one for a file no policy selects (denied as `gate/gate.unmatched`)."""
    return decision.policies == () and [v.ref for v in decision.denying] == ["gate/gate.unmatched"]


def test_match_selects_files() -> None:
    only_corp = policies(doc("p", "match: {packages: ['corp-*']}\nminimumAge: 7d"))
    assert _unmatched(evaluate(only_corp, YOUNG, f.NOW))
    denied = evaluate(only_corp, f.facts(name="corp-tools", uploaded=None), f.NOW)
    assert denied.policies == ("p",) and [v.rule for v in denied.denying] == ["minimumAge"]
    excluded = policies(doc("p", "match: {exclude: [SampleProject]}\nminimumAge: 7d"))
    assert _unmatched(evaluate(excluded, YOUNG, f.NOW))
    conda_only = policies(doc("p", "match: {ecosystems: [conda]}\nminimumAge: 7d"))
    assert _unmatched(evaluate(conda_only, YOUNG, f.NOW))
    conda = f.facts(ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, uploaded=None)
    assert [v.rule for v in evaluate(conda_only, conda, f.NOW).denying] == ["minimumAge"]


def test_conda_names_with_separators_are_matched() -> None:
    compiled = policies(doc("p", "match: {ecosystems: [conda], packages: [python_abi]}\nminimumAge: 7d"))
    abi = f.facts(ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, name="python_abi", uploaded=None)
    assert evaluate(compiled, abi, f.NOW).verdict is Verdict.DENY
    other = f.facts(ecosystem=Ecosystem.CONDA, kind=FileKind.CONDA, name="python-abi", uploaded=None)
    assert _unmatched(evaluate(compiled, other, f.NOW))


EXCEPTION = """
minimumAge: 7d
attestations: {required: true}
exceptions:
  - packages: ["sampleproject<5"]
    waive: [attestations]
    reason: vendor has no trusted publishing yet
    owner: security@example.com
    expires: 2026-12-31
"""


def test_exception_waives_named_rules_until_it_expires() -> None:
    compiled = policies(doc("p", EXCEPTION))
    old = f.facts()
    decision = evaluate(compiled, old, f.NOW)
    assert decision.verdict is Verdict.ALLOW
    (waived,) = decision.violations
    assert waived.rule == "attestations.required"
    assert waived.waived == "vendor has no trusted publishing yet, owner security@example.com, until 2026-12-31"
    # Valid through the whole expiry day, gone after it.
    assert evaluate(compiled, old, dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)).verdict is Verdict.ALLOW
    assert evaluate(compiled, old, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)).verdict is Verdict.DENY


def test_exception_respects_version_and_rule() -> None:
    compiled = policies(doc("p", EXCEPTION))
    assert evaluate(compiled, f.facts(version="5.0"), f.NOW).verdict is Verdict.DENY
    young = evaluate(compiled, YOUNG, f.NOW)
    assert [v.rule for v in young.denying] == ["minimumAge"]  # attestations waived, age is not


def test_audit_mode_reports_but_allows() -> None:
    compiled = policies(doc("audit", "mode: audit\nminimumAge: 7d"), doc("enforce", "minimumAge: 1h"))
    decision = evaluate(compiled, YOUNG, f.NOW)
    assert decision.verdict is Verdict.ALLOW
    (violation,) = decision.violations
    assert violation.policy == "audit" and not violation.enforced
    assert decision.to_json()["audit"][0]["audit"] is True
    assert decision.to_json()["violations"] == []
