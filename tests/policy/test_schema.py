"""A malformed policy gets every error, each with its path, file and line."""

from __future__ import annotations

import datetime as dt

import pytest

from gate.decision import Verdict
from gate.errors import PolicyError
from gate.evaluate import evaluate
from gate.policy.compile import load_policy_text
from gate.policy.model import parse_expiry
from tests import factories as f

HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\n"


def errors(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "p.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_all_errors_with_paths_and_lines() -> None:
    text = HEADER + (
        "spec:\n"
        "  mode: block\n"
        "  minimumAge: 7 days\n"
        "  attestations:\n"
        "    signers:\n"
        "      - {identity: x, issuer: y}\n"
        "      - {identity: x}\n"
        "      - publisher: {kind: GitHub, workflow: r.yml}\n"
    )
    found = errors(text)
    assert any(e.startswith("p.yaml:5: spec.mode: 'block' is not one of") for e in found), found
    assert any(e.startswith("p.yaml:6: spec.minimumAge: invalid duration '7 days'") for e in found), found
    assert any(e.startswith("p.yaml:10: spec.attestations.signers[1]: a signer is either") for e in found), found
    assert any(e.startswith("p.yaml:11: spec.attestations.signers[2]") for e in found), found


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mach: {}", "spec.mach: unknown key 'mach' (did you mean 'match'?)"),
        ("match: {ecosystems: [npm]}", "spec.match.ecosystems[0]: 'npm' is not one of"),
        ("minimumAge: {age: 2x}", "spec.minimumAge.age: invalid duration '2x'"),
        ("minimumAge: {age: 2d, whenUnknown: maybe}", "spec.minimumAge"),
        (
            "attestations: {signers: [{identity: {regex: 'a('}, issuer: x}]}",
            "spec.attestations.signers[0].identity.regex: invalid regex 'a('",
        ),
        (
            "attestations: {signers: [{publisher: {kind: GitHub, repository: a/b, worklow: x}}]}",
            "spec.attestations.signers[0].publisher.worklow: unknown key 'worklow' (did you mean 'workflow'?)",
        ),
        ("attestations: {signers: [{publisher: {kind: Google}}]}", "'email' is required"),
        ("attestations: {targetChannel: chan}", "spec.attestations.targetChannel: must be 'match' or a channel URL"),
        (
            "exceptions: [{packages: [x], waive: [attestations], reason: r}]",
            "spec.exceptions[0]: 'expires' is required",
        ),
        (
            "exceptions: [{packages: [x], waive: [minimumAge], reason: r, expires: 2027-13-45}]",
            "spec.exceptions[0].expires: invalid expiry",
        ),
        (
            "exceptions: [{packages: [x], waive: [minimumAg], reason: r, expires: 2027-01-01}]",
            "spec.exceptions[0].waive[0]: no rule named 'minimumAg'",
        ),
        (
            "exceptions: [{packages: ['x>>1'], waive: [minimumAge], reason: r, expires: 2027-01-01}]",
            "spec.exceptions[0].packages[0]: Invalid specifier",
        ),
        ("rules: [{name: r, expression: 'file.name ==', message: m}]", "spec.rules[0].expression: CEL syntax error"),
        ("rules: [{name: minimumAge, expression: 'true', message: m}]", "spec.rules[0].name: rule name 'minimumAge'"),
    ],
)
def test_error_messages(spec: str, message: str) -> None:
    found = errors(HEADER + "spec:\n  " + spec + "\n")
    assert any(message in e for e in found), found


def test_header_errors() -> None:
    found = errors("apiVersion: gate/v2\nkind: Policy\nmetadata: {name: Bad Name}\nspec: {}\n")
    assert any("apiVersion" in e for e in found)
    assert any("metadata.name: must be lowercase" in e for e in found)


def test_yaml_syntax_error_has_line() -> None:
    found = errors(HEADER + "spec:\n  mode: [enforce\n")
    assert found and found[0].startswith("p.yaml:") and "invalid YAML" in found[0]


def test_duplicate_names_across_documents() -> None:
    found = errors(HEADER + "spec: {}\n---\n" + HEADER + "spec: {}\n")
    assert any("policy name 'p' is already used" in e for e in found)


def test_errors_from_every_document_are_collected() -> None:
    doc2 = HEADER.replace("name: p", "name: q") + "spec: {mode: x}\n"
    found = errors(HEADER + "spec: {mode: y}\n---\n" + doc2)
    assert len(found) == 2


@pytest.mark.parametrize("basic", ["20270131", "2027-W04-7", "2027W047"])
def test_every_date_form_means_through_that_day(basic: str) -> None:
    """`20270131` was read as the start of the day while `2027-01-31` ran through it: one meaning for both."""
    assert parse_expiry(basic) == parse_expiry("2027-01-31") == dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    policy = HEADER + (
        "spec:\n  minimumAge: 7d\n  exceptions:\n"
        f"    - {{packages: [sampleproject], waive: [minimumAge], reason: r, expires: '{basic}'}}\n"
    )
    compiled = load_policy_text(policy, "p.yaml")
    young = f.facts(uploaded=dt.datetime(2027, 1, 30, tzinfo=dt.UTC))
    noon = dt.datetime(2027, 1, 31, 12, tzinfo=dt.UTC)
    assert evaluate(compiled, young, noon).verdict is Verdict.ALLOW
    assert evaluate(compiled, young, dt.datetime(2027, 2, 1, tzinfo=dt.UTC)).verdict is Verdict.DENY


def test_times_are_taken_as_given() -> None:
    assert parse_expiry("2027-01-31T12:00:00") == dt.datetime(2027, 1, 31, 12, tzinfo=dt.UTC)
    assert parse_expiry("2027-01-31T12:00:00+02:00") == dt.datetime(2027, 1, 31, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("minimumAge: 99999999999d", "p.yaml:5: spec.minimumAge: invalid duration '99999999999d': longer than"),
        ("minimumAge: {age: P99999999999D}", "p.yaml:5: spec.minimumAge.age: invalid duration 'P99999999999D'"),
        (
            "exceptions: [{packages: [x], waive: [minimumAge], reason: r, expires: '9999-12-31T23:00:00-14:00'}]",
            "p.yaml:5: spec.exceptions[0].expires: invalid expiry '9999-12-31T23:00:00-14:00': outside the years",
        ),
    ],
)
def test_values_that_overflow_are_policy_errors(spec: str, message: str) -> None:
    assert any(e.startswith(message) for e in errors(HEADER + "spec:\n  " + spec + "\n")), errors(HEADER + spec)


def test_an_exception_through_the_last_representable_day_never_expires() -> None:
    policy = HEADER + (
        "spec:\n  minimumAge: 7d\n  exceptions:\n"
        "    - {packages: [sampleproject], waive: [minimumAge], reason: r, expires: 9999-12-31}\n"
    )
    young = f.facts(uploaded=f.NOW)
    assert evaluate(load_policy_text(policy, "p.yaml"), young, f.NOW).verdict is Verdict.ALLOW


def test_a_huge_unknown_key_is_shown_shortened() -> None:
    found = errors(HEADER + "spec:\n  minimumAge: 1d\n  ? " + "x" * 100_000 + "\n  : 1\n")
    assert len(found) == 1 and len(found[0]) < 400, found[0][:400]
    assert found[0].startswith("p.yaml:6: spec." + "x" * 80 + "...: unknown key '" + "x" * 80 + "...'")
