"""A malformed policy gets every error, each with its path, file and line."""

from __future__ import annotations

import pytest

from gate.errors import PolicyError
from gate.policy.compile import load_policy_text

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
