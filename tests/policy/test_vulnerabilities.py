"""spec.vulnerabilities: bands, malicious reports, ignores by id or alias until they expire, the message, the
native checks against their CEL, the memo keyed on the records, the schema and lint."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from msgspec.structs import replace

from gate.errors import PolicyError
from gate.evaluate import Evaluator, evaluate
from gate.facts import Facts, Vulnerability, severity_band
from gate.policy.activation import to_activation
from gate.policy.cel_types import MAX_RECORD_LIST, MAX_VULNERABILITIES
from gate.policy.compile import CompiledPolicy, CompiledRule, load_policy_text
from gate.policy.lint import LintOptions, lint_document
from gate.policy.load import load_text
from tests import factories as f
from tests.support.osv_fake import FakeOsvDatabase

HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
DB = FakeOsvDatabase()
REQUESTS_2_30 = DB.lookup(f.file().ecosystem, "requests", "2.30.0")  # GHSA-9wx4 (5.6), GHSA-j8r2 (6.1)


def policy(spec: str) -> list[CompiledPolicy]:
    return load_policy_text(HEADER + "".join(f"  {line}\n" for line in spec.strip().splitlines()))


def facts(*records: Vulnerability) -> Facts:
    return Facts(f.file(name="requests", version="2.30.0", filename="requests-2.30.0-py3-none-any.whl"),
                 vulnerabilities=records)


def record(**changes: Any) -> Vulnerability:
    return replace(Vulnerability(id="GHSA-xxxx-xxxx-xxxx"), **changes)


@pytest.mark.parametrize(
    ("score", "label", "malicious", "band"),
    [
        (0.0, None, False, "low"), (3.9, "CRITICAL", False, "low"), (4.0, None, False, "medium"),
        (6.9, None, False, "medium"), (7.0, "LOW", False, "high"), (8.9, None, False, "high"),
        (9.0, None, False, "critical"), (10.0, None, False, "critical"),
        (None, "LOW", False, "low"), (None, "MODERATE", False, "medium"), (None, "medium", False, "medium"),
        (None, "HIGH", False, "high"), (None, "CRITICAL", False, "critical"), (None, None, False, "unknown"),
        (None, "SEVERE", False, "unknown"), (None, None, True, "critical"), (1.0, "LOW", True, "critical"),
    ],
)
def test_bands_by_score_then_label_and_malicious_reports_are_critical(
    score: float | None, label: str | None, malicious: bool, band: str
) -> None:
    assert severity_band(record(severity=score, severityLabel=label, malicious=malicious)) == band


@pytest.mark.parametrize(
    ("max_severity", "denied"),
    [("none", True), ("low", True), ("medium", False), ("high", False), ("critical", False)],
)
def test_max_severity_on_the_real_requests_records(max_severity: str, denied: bool) -> None:
    decision = evaluate(policy(f"vulnerabilities: {{maxSeverity: {max_severity}}}"), facts(*REQUESTS_2_30), f.NOW)
    assert [v.rule for v in decision.denying] == (["vulnerabilities.maxSeverity"] if denied else [])


def test_the_message_names_ids_severities_and_fixed_versions() -> None:
    decision = evaluate(policy("vulnerabilities: {maxSeverity: low}"), facts(*REQUESTS_2_30), f.NOW)
    (violation,) = decision.denying
    assert "GHSA-9wx4-h78v-vm56 (medium 5.6, fixed in 2.32.0)" in violation.message
    assert "GHSA-j8r2-6x86-q33q (medium 6.1, fixed in 2.31.0)" in violation.message
    assert "above low severity" in violation.message and "spec.vulnerabilities.ignore" in violation.message


def test_a_record_without_score_or_label_is_above_every_band_but_critical() -> None:
    unknown = facts(record())
    assert evaluate(policy("vulnerabilities: {maxSeverity: high}"), unknown, f.NOW).verdict.value == "deny"
    assert evaluate(policy("vulnerabilities: {maxSeverity: critical}"), unknown, f.NOW).verdict.value == "allow"


def test_malicious_reports_deny_by_default_and_count_as_critical_when_allowed() -> None:
    (num2words,) = DB.lookup(f.file().ecosystem, "num2words", "0.5.15")
    bad = facts(num2words)
    assert [v.rule for v in evaluate(policy("vulnerabilities: {}"), bad, f.NOW).denying] == [
        "vulnerabilities.malicious"]
    (violation,) = evaluate(policy("vulnerabilities: {maxSeverity: high}"), bad, f.NOW).denying
    assert violation.rule == "vulnerabilities.malicious"  # one violation, not two
    assert "MAL-2025-6794 (malicious, no fixed version)" in violation.message
    allowed = "vulnerabilities: {malicious: allow, maxSeverity: high}"
    assert [v.rule for v in evaluate(policy(allowed), bad, f.NOW).denying] == ["vulnerabilities.maxSeverity"]
    assert not evaluate(policy("vulnerabilities: {malicious: allow}"), bad, f.NOW).denying


IGNORE = """
vulnerabilities:
  maxSeverity: low
  ignore:
    - ids: [{ids}]
      reason: not reachable
      owner: security@example.com
      expires: "{expires}"
"""


@pytest.mark.parametrize(
    ("ids", "denied"),
    [
        ("GHSA-9wx4-h78v-vm56, GHSA-j8r2-6x86-q33q", False),
        ("CVE-2024-35195, CVE-2023-32681", False),  # by alias
        ("GHSA-9wx4-h78v-vm56", True),  # the other record still applies
        ("ghsa-9wx4-h78v-vm56, GHSA-j8r2-6x86-q33q", True),  # ids are exact
    ],
)
def test_an_ignore_covers_a_record_by_id_or_alias(ids: str, denied: bool) -> None:
    compiled = policy(IGNORE.format(ids=ids, expires="2027-01-31"))
    assert bool(evaluate(compiled, facts(*REQUESTS_2_30), f.NOW).denying) is denied


def test_an_ignore_holds_until_it_expires_and_the_judgement_says_so() -> None:
    compiled = policy(IGNORE.format(ids="GHSA-9wx4-h78v-vm56, GHSA-j8r2-6x86-q33q", expires="2026-12-01"))
    judged = Evaluator(compiled).judge(facts(*REQUESTS_2_30), f.NOW)
    assert not judged.decision.denying
    assert judged.valid_until == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    later = Evaluator(compiled).judge(facts(*REQUESTS_2_30), dt.datetime(2026, 12, 2, tzinfo=dt.UTC))
    assert [v.rule for v in later.decision.denying] == ["vulnerabilities.maxSeverity"]


def test_an_exception_may_waive_the_vulnerability_rules() -> None:
    compiled = policy("""
vulnerabilities: {maxSeverity: low}
exceptions:
  - {packages: [requests], waive: [vulnerabilities], reason: r, expires: "2027-01-31"}
""")
    decision = evaluate(compiled, facts(*REQUESTS_2_30), f.NOW)
    assert decision.verdict.value == "allow" and decision.violations[0].waived


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vulnerabilities: {maxSeverity: moderate}", "spec.vulnerabilities.maxSeverity"),
        ("vulnerabilities: {malicious: warn}", "spec.vulnerabilities.malicious"),
        ("vulnerabilities: {ignore: [{ids: [X], reason: r}]}", "expires"),
        ("vulnerabilities: {ignore: [{ids: [], reason: r, expires: '2027-01-01'}]}", "ignore[0].ids"),
        ("vulnerabilities: {ignore: [{ids: [X], reason: r, expires: soon}]}", "ignore[0].expires"),
        ("vulnerabilities: {maxSeverty: low}", "maxSeverty"),
        ("vulnerabilities: {ignore: [" + ", ".join(
            f"{{ids: [{', '.join(f'I{i}-{j}' for j in range(50))}], reason: r, expires: '2027-01-01'}}"
            for i in range(21)) + "]}", "more than 1000 ids"),
    ],
)
def test_bad_vulnerabilities_sections_are_policy_errors(spec: str, message: str) -> None:
    """An unknown band or key, a bad expiry, no ids, or more ids than are compiled in reasonable time."""
    with pytest.raises(PolicyError) as caught:
        policy(spec)
    assert message in "\n".join(str(i) for i in caught.value.issues)


def test_lint_warns_of_an_ignore_that_expires_soon_and_errs_on_an_expired_one() -> None:
    text = HEADER + """  vulnerabilities:
    maxSeverity: medium
    ignore:
      - {ids: [A], reason: r, expires: "2026-11-25"}
      - {ids: [B], reason: r, expires: "2026-11-01"}
      - {ids: [C], reason: r, expires: "2028-01-01"}
"""
    (raw,) = load_text(text, "p.yaml")
    _, findings = lint_document(raw, LintOptions(now=f.NOW))
    coded = {(x.code, x.issue.path) for x in findings}
    assert ("expiring-exception", "spec.vulnerabilities.ignore[0].expires") in coded
    assert ("expired-exception", "spec.vulnerabilities.ignore[1].expires") in coded
    assert not any("ignore[2]" in path for _, path in coded)


def _generated(rng: random.Random) -> Facts:
    labels = [None, "LOW", "MODERATE", "HIGH", "CRITICAL", "weird"]
    ids = ["GHSA-a", "GHSA-b", "MAL-1", "PYSEC-1"]
    records = [
        Vulnerability(
            id=rng.choice(ids), aliases=tuple(rng.sample(["CVE-1", "CVE-2", "PYSEC-1"], rng.randint(0, 2))),
            severity=rng.choice([None, 0.0, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10.0]), severityLabel=rng.choice(labels),
            fixed=tuple(str(i) for i in range(rng.choice([0, 1, MAX_RECORD_LIST, MAX_RECORD_LIST + 1]))),
            malicious=rng.random() < 0.2,
        )
        for _ in range(rng.choice([0, 0, 1, 2, 3, MAX_VULNERABILITIES + 1]))
    ]
    return facts(*records)


@pytest.mark.parametrize(
    "spec",
    [
        "vulnerabilities: {maxSeverity: none}",
        "vulnerabilities: {maxSeverity: medium, malicious: allow}",
        IGNORE.format(ids="GHSA-a, CVE-2", expires="2026-11-22T12:00:00Z"),
        IGNORE.format(ids="MAL-1, PYSEC-1", expires="2027-01-31").replace("low", "high"),
    ],
)
def test_native_checks_agree_with_their_cel(spec: str) -> None:
    rules: list[CompiledRule] = [r for r in policy(spec)[0].rules if r.native is not None]
    assert rules
    rng = random.Random(spec)
    for i in range(200):
        generated = _generated(rng)
        now = f.NOW + dt.timedelta(microseconds=rng.choice([-1, 0, 1, 10**12]))
        for rule in rules:
            assert rule.native is not None
            judged = rule.native(generated, now)
            assert judged is not None  # the vulnerability rules' natives judge every file
            passed, error, changes = judged
            assert (passed, error) == rule.evaluate(to_activation(generated, now)), (rule.name, i)
            if changes is not None:
                assert rule.evaluate(to_activation(generated, changes))[0] != passed
                assert rule.evaluate(to_activation(generated, changes - dt.timedelta(microseconds=1)))[0] == passed


def test_a_custom_rule_reads_vulnerabilities_and_its_memo_keys_on_them() -> None:
    """Two files that differ only in their records never share a memoized outcome."""
    compiled = policy("""
rules:
  - name: no-high
    expression: '!vulnerabilities.exists(v, v.band in ["high", "critical"])'
    message: high
""")
    evaluator = Evaluator(compiled)
    clean, high = facts(), facts(record(severity=7.5))
    assert not evaluator.judge(clean, f.NOW).decision.denying
    assert [v.rule for v in evaluator.judge(high, f.NOW).decision.denying] == ["no-high"]
    assert not evaluator.judge(clean, f.NOW).decision.denying
    assert [v.rule for v in evaluator.judge(replace(high, vulnerabilities=(record(severity=9.5),)), f.NOW)
            .decision.denying] == ["no-high"]


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("vulnerabilities.exists(v, v.sevrity > 7.0)", "did you mean 'severity'"),
        ("vulnerabilities.exists(v, v.band == 7)", "no operator =="),
        ("vulnerabilities.all(v, v.fixed.exists(x, x == 1))", "no operator =="),
    ],
)
def test_lint_type_checks_rules_that_read_vulnerabilities(expression: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(f"rules: [{{name: r, expression: '{expression}', message: m}}]")
    assert problem in str(caught.value.issues[0])


def test_a_long_ignore_list_compiles_and_judges() -> None:
    """A thousand ids in 100 entries, each with its own expiry: no nesting or cost error (the rules are judged
    natively; their CEL is one map of ids to ends), and the one that names a record covers it."""
    entries = [f"{{ids: [{', '.join(f'GHSA-{i}-{j}' for j in range(10))}], reason: r, expires: '2027-{1 + i % 12:02d}-"
               f"{1 + i % 28:02d}'}}" for i in range(99)]
    entries.append("{ids: [CVE-2024-35195, CVE-2023-32681], reason: r, expires: '2026-12-31'}")
    compiled = policy(f"vulnerabilities: {{maxSeverity: none, ignore: [{', '.join(entries)}]}}")
    judged = Evaluator(compiled).judge(facts(*REQUESTS_2_30), f.NOW)
    assert not judged.decision.denying and judged.valid_until == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
