"""`gate lint` warns on policies that look fine but are weak: signers anyone can satisfy, attestations
from any identity, exceptions for every package, policies that do nothing, ecosystems nothing governs;
and on literal GitHub identities that can never match. Every finding in every output format."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gate.cli import main
from gate.errors import Level
from gate.policy.lint import lint_paths
from tests.policy.lint.test_formats import validate_sarif
from tests.policy.lint.test_lint import HEADER, OPTIONS, lint_text

GITHUB = "https://token.actions.githubusercontent.com"
GOOGLE = "https://accounts.google.com"
RULE = "rules: [{name: r, expression: 'true', message: m}]\n"


@pytest.mark.parametrize(
    ("spec", "code", "line", "message"),
    [
        (
            "attestations:\n  predicateTypes: ['https://docs.pypi.org/attestations/publish/v1']\n",
            "any-signer", 6, "an attestation from any Sigstore identity passes",
        ),
        ("attestations: {required: true}\n", "any-signer", 5, "attestations without signers"),
        (
            "minimumAge: {age: 7d, timeSources: [index, transparencyLog]}\n",
            "any-signer-age", 5, "aged by the signed time of evidence from any Sigstore identity",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: GitHub, repository: '*'}\n",
            "broad-signer", 7, "repository '*' matches values anyone can obtain",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: GitHub, repository: '*/sampleproject'}\n",
            "broad-signer", 7, "repository '*/sampleproject' matches values anyone can obtain",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: GitLab, repository: 'gr?up/project'}\n",
            "broad-signer", 7, "repository 'gr?up/project'",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: GitHub, repository: {regex: '[^/]+/[^/]+'}}\n",
            "broad-signer", 7, "repository '[^/]+/[^/]+'",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: Google, email: '*@developer.gserviceaccount.com'}\n",
            "broad-signer", 7, "email '*@developer.gserviceaccount.com' matches values anyone can obtain",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: Google, email: '*@*.iam.gserviceaccount.com'}\n",
            "broad-signer", 7, "email '*@*.iam.gserviceaccount.com'",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: Google, email: {regex: '.*@gmail\\.com'}}\n",
            "broad-signer", 7, "email '.*@gmail\\\\.com'",
        ),
        (
            f"attestations:\n  signers:\n    - {{issuer: {GOOGLE}, identity: '*@developer.gserviceaccount.com'}}\n",
            "broad-signer", 7, "identity '*@developer.gserviceaccount.com'",
        ),
        (
            f"attestations:\n  signers:\n    - {{issuer: {GITHUB}, identity: 'https://github.com/*'}}\n",
            "broad-signer", 7, "identity 'https://github.com/*'",
        ),
        (
            f"attestations:\n  signers:\n    - {{issuer: {GITHUB}, identity: 'https://github.com/pypa*/x/*'}}\n",
            "broad-signer", 7, "identity 'https://github.com/pypa*/x/*'",
        ),
        (
            f"attestations:\n  signers:\n    - issuer: {GITHUB}\n"
            "      identity: {regex: 'https://github\\.com/[^/]+/sampleproject/.*'}\n",
            "broad-signer", 8, "/sampleproject/.*' matches values anyone can obtain",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: GitHub, repository: {regex: '[a-z]+/sampleproject'}}\n",
            "broad-signer", 7, "repository '[a-z]+/sampleproject'",
        ),
        (
            "attestations:\n  signers:\n    - {issuer: 'https://oidc.circleci.com/org/x', identity: 'https://*'}\n",
            "broad-signer", 7, "identity 'https://*'",
        ),
        (
            f"attestations:\n  signers:\n    - {{issuer: {GITHUB}, identity: '*'}}\n",
            "broad-signer", 7, "identity '*'",
        ),
        (
            f"attestations:\n  signers:\n    - issuer: {GITHUB}\n"
            "      identity: https://github.com/pypa/sampleproject/.github/workflows/release.yml\n",
            "signer", 8, "can never match: certificates from https://token.actions.githubusercontent.com name the "
            "workflow with its ref",
        ),
        (
            "minimumAge: 1d\nexceptions:\n"
            "  - {packages: ['*'], waive: [minimumAge], reason: r, expires: 2027-01-31}\n",
            "broad-exception", 7, "'*' selects every package: the exception waives minimumAge for all of them",
        ),
        (
            "minimumAge: 1d\nexceptions:\n"
            "  - {packages: ['*<99'], waive: [minimumAge], reason: r, expires: 2027-01-31}\n",
            "broad-exception", 7, "'*' selects every package",
        ),
        ("{}\n", "empty-policy", 4, "the policy has no rule"),
        ("match: {ecosystems: [pypi]}\n", "empty-policy", 4, "it allows every file it matches"),
        ("attestations: {required: false}\n", "empty-policy", 4, "the policy has no rule"),
    ],
)
def test_weak_policy_is_flagged(tmp_path: Path, spec: str, code: str, line: int, message: str) -> None:
    if spec == "{}\n":
        (tmp_path / "p.yaml").write_text(HEADER.replace("spec:\n", "spec: {}\n"), encoding="utf-8")
        findings = [f for f in lint_paths([tmp_path / "p.yaml"], OPTIONS) if f.code != "ungoverned-ecosystem"]
    else:
        findings = lint_text(tmp_path, spec)
    found = [f for f in findings if f.code == code]
    assert found, findings
    assert message in found[0].issue.message, found[0].issue.message
    assert (found[0].issue.line, found[0].issue.file) == (line, str(tmp_path / "p.yaml"))
    assert found[0].level is (Level.ERROR if code == "signer" else Level.WARNING)


@pytest.mark.parametrize(
    "spec",
    [
        "attestations:\n  signers:\n    - publisher: {kind: GitHub, repository: 'pypa/*', workflow: '*'}\n",
        "attestations:\n  signers:\n    - publisher: {kind: Google, email: '*@my-project.iam.gserviceaccount.com'}\n",
        "attestations:\n  signers:\n    - publisher: {kind: Google, email: 'release@developer.gserviceaccount.com'}\n",
        "attestations:\n  signers:\n    - publisher: {kind: GitLab, repository: {regex: 'group/(a|b)'}}\n",
        f"attestations:\n  signers:\n    - {{issuer: {GITHUB}, identity: 'https://github.com/pypa/*'}}\n",
        # another issuer's URL: its wildcard is past the host, where gate cannot tell the owner
        "attestations:\n  signers:\n    - issuer: https://oidc.circleci.com/org/fdd9283f\n"
        "      identity: 'https://circleci.com/api/v2/projects/fdd9283f/pipeline-definitions/*'\n",
        f"attestations:\n  signers:\n    - issuer: {GITHUB}\n"
        "      identity: https://github.com/pypa/sampleproject/.github/workflows/release.yml@refs/heads/main\n",
        f"attestations:\n  signers:\n    - issuer: {GITHUB}\n"
        "      identity: {regex: 'https://github\\.com/pallets/[^/]+/\\.github/workflows/publish\\.yml@refs/tags/.*'}\n",
        "minimumAge: 1d\nexceptions:\n"
        "  - {packages: ['legacy-*'], waive: [minimumAge], reason: r, expires: 2027-01-31}\n",
    ],
)
def test_specific_policy_is_not_flagged(tmp_path: Path, spec: str) -> None:
    assert lint_text(tmp_path, spec) == []


def write(path: Path, name: str, spec: str) -> Path:
    path.write_text(HEADER.replace("name: p", f"name: {name}") + textwrap.indent(spec, "  "), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("specs", "denied", "unchecked"),
    [
        ([RULE], [], []),
        ([f"match: {{ecosystems: [pypi, conda], exclude: ['corp-*']}}\n{RULE}"], [], []),
        ([f"match: {{ecosystems: [pypi]}}\n{RULE}"], ["conda"], []),
        ([f"match: {{ecosystems: [pypi]}}\n{RULE}", f"match: {{ecosystems: [conda]}}\n{RULE}"], [], []),
        ([f"match: {{packages: [numpy, requests]}}\n{RULE}"], ["conda", "pypi"], []),
        ([f"match: {{packages: ['corp-*']}}\n{RULE}", f"match: {{ecosystems: [conda]}}\n{RULE}"], ["pypi"], []),
        # selected, so not denied as unmatched, but by policies that enforce nothing: allowed unchecked
        ([f"mode: audit\n{RULE}"], [], ["conda", "pypi"]),
        (["match: {ecosystems: [conda]}\n", f"match: {{ecosystems: [pypi]}}\n{RULE}"], [], ["conda"]),
    ],
)
def test_ungoverned_ecosystems(tmp_path: Path, specs: list[str], denied: list[str], unchecked: list[str]) -> None:
    for i, spec in enumerate(specs):
        write(tmp_path / f"p{i}.yaml", f"p{i}", spec)
    found = [f for f in lint_paths([tmp_path], OPTIONS) if f.code == "ungoverned-ecosystem"]
    assert all(f.level is Level.WARNING and f.issue.file == str(tmp_path) for f in found)
    messages = [f.issue.message for f in found]
    assert [m.split("no policy selects ")[1].split(" ")[0] for m in messages if "denied by default" in m] == denied
    assert [m.split(" ")[0] for m in messages if "allowed unchecked" in m] == unchecked
    assert len(messages) == len(denied) + len(unchecked)


def test_no_ungoverned_warning_on_a_set_that_does_not_load(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", "p", "match: {ecosystems: [pypi]}\nminimumAge: soon\n")
    assert [f.code for f in lint_paths([tmp_path], OPTIONS)] == ["duration"]


WEAK = """\
match: {ecosystems: [pypi, conda]}
attestations:
  predicateTypes: ['https://docs.pypi.org/attestations/publish/v1']
exceptions:
  - {packages: ['*'], waive: [attestations], reason: r, expires: 2027-01-31}
"""


def test_every_format_carries_the_new_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = write(tmp_path / "weak.yaml", "weak", WEAK)
    expected = [("any-signer", 7), ("broad-exception", 9)]
    assert main(["lint", "--now", "2026-11-20", str(policy)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert [line.rsplit("[", 1)[-1].rstrip("]") for line in text[:-1]] == [c for c, _ in expected]
    assert text[0].startswith(f"{policy}:7: warning: spec.attestations.predicateTypes: attestations without")
    assert main(["lint", "--now", "2026-11-20", "--strict", str(policy)]) == 1
    capsys.readouterr()
    assert main(["lint", "--now", "2026-11-20", "--format", "json", str(policy)]) == 0
    items = json.loads(capsys.readouterr().out)["findings"]
    assert [(i["code"], i["line"], i["level"]) for i in items] == [(c, n, "warning") for c, n in expected]
    assert main(["lint", "--now", "2026-11-20", "--format", "sarif", str(policy)]) == 0
    document = json.loads(capsys.readouterr().out)
    validate_sarif(document)
    results = document["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == expected
    assert main(["lint", "--now", "2026-11-20", "--format", "github", str(policy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"::warning file={policy},line=7,title=gate lint (any-signer)::")
    assert lines[1].startswith(f"::warning file={policy},line=9,title=gate lint (broad-exception)::")


def test_ungoverned_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "pypi.yaml", "pypi", f"match: {{ecosystems: [pypi]}}\n{RULE}")
    assert main(["lint", "--format", "sarif", str(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    validate_sarif(document)
    [result] = document["runs"][0]["results"]
    assert result["ruleId"] == "ungoverned-ecosystem" and result["level"] == "warning"
    assert main(["lint", "--format", "github", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"::warning file={tmp_path},title=gate lint (ungoverned-ecosystem)::")
    assert main(["lint", "--format", "json", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["findings"][0]["code"] == "ungoverned-ecosystem"
