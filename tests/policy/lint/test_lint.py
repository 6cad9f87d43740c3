"""`gate lint`: every problem found, with its file, line and a stable code."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gate.errors import Finding, Level
from gate.policy.activation import to_activation
from gate.policy.cel import CELEvalError, compile_expression, error_text, run
from gate.policy.lint import LintOptions, lint_paths
from gate.policy.lint_cel import representative_facts, sparse_facts
from tests.conftest import REPO

NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
OPTIONS = LintOptions(now=NOW)
HEADER = "apiVersion: gate/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n"


def lint_text(tmp_path: Path, spec: str, name: str = "p.yaml") -> list[Finding]:
    """The findings of one policy, without those on the policy set (a set of one governs little)."""
    path = tmp_path / name
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(spec), "  "), encoding="utf-8")
    return [f for f in lint_paths([path], OPTIONS) if f.code != "ungoverned-ecosystem"]


def test_shipped_policies_are_clean() -> None:
    """But for conda: the shipped policies govern one conda package, so other conda files are denied."""
    [finding] = lint_paths([REPO / "policies"], OPTIONS)
    assert (finding.code, finding.level) == ("ungoverned-ecosystem", Level.WARNING)
    assert finding.issue.file == str(REPO / "policies")
    assert "conda files no policy matches are denied by default" in finding.issue.message


@pytest.mark.parametrize(
    ("spec", "code", "line", "message"),
    [
        ("minimumAge: 7x\n", "duration", 5, "invalid duration '7x'"),
        ("atestations: {}\n", "unknown-key", 5, "unknown key 'atestations' (did you mean 'attestations'?)"),
        ("mode: enforced\n", "schema", 5, "'enforced' is not one of"),
        (
            "attestations:\n  signers:\n    - issuer: https://token.actions.githubusercontent.com\n"
            "      identity: {regex: 'a(b'}\n",
            "regex", 8, "invalid regex 'a(b'",
        ),
        (
            "rules:\n  - {name: r, expression: 'file.name ==', message: m}\n",
            "cel-syntax", 6, "CEL syntax error at line 1, column 11",
        ),
        (
            "rules:\n  - {name: r, expression: \"file.nmae == 'x'\", message: m}\n",
            "cel-type", 6, "file has no field 'nmae'; did you mean 'name'? at line 1, column 6 of the expression",
        ),
        (
            "rules:\n  - {name: r, expression: \"file.size > 'big'\", message: m}\n",
            "cel-type", 6, "no operator > for (int, string) at line 1, column 11",
        ),
        ("rules:\n  - {name: r, expression: 'file.name', message: m}\n", "cel-type", 6, "yields string, not a bool"),
        (
            "rules:\n  - {name: r, expression: \"now - file.uploaded > duration('1d')\", message: m}\n",
            "cel-null", 6, "fails (and denies) when optional facts are missing",
        ),
        (
            "exceptions:\n  - {packages: [a], waive: [minimumAge], reason: r, expires: 2026-01-01}\nminimumAge: 1d\n",
            "expired-exception", 6, "exception expired on 2026-01-01",
        ),
        (
            "exceptions:\n  - {packages: [a], waive: [minimumAge], reason: r, expires: 2026-11-30}\nminimumAge: 1d\n",
            "expiring-exception", 6, "expires on 2026-11-30 (in 11 days)",
        ),
        (
            "exceptions:\n  - {packages: [a], waive: [minimumAge], reason: r, expires: 2027-11-30}\n",
            "waive", 6, "this policy has no such rule",
        ),
        (
            "exceptions:\n  - {packages: [a], waive: [minimumage], reason: r, expires: 2027-11-30}\nminimumAge: 1d\n",
            "waive", 6, "no rule named 'minimumage'; rules: attestations.predicateTypes",
        ),
        (
            "rules:\n  - {name: r, expression: 'true', message: m}\n  - {name: r, expression: 'true', message: m}\n",
            "rule-name", 7, "rule name 'r' is already used",
        ),
        ("rules:\n  - {name: minimumAge, expression: 'true', message: m}\n", "rule-name", 6, "'minimumAge' is already"),
        (
            "attestations:\n  signers:\n    - issuer: https://token.actions.githubusercontent.com\n"
            "      identity: {regex: 'github\\.com/pallets/.*'}\n",
            "signer", 8, "can never match: certificates from https://token.actions.githubusercontent.com",
        ),
        (
            "attestations:\n  signers:\n    - issuer: https://gitlab.com\n      identity: https://github.com/a/*\n",
            "signer", 8, "name a workflow URL starting with https://gitlab.com/",
        ),
        (
            "attestations:\n  signers:\n    - issuer: token.actions.githubusercontent.com\n      identity: x\n",
            "signer", 7, "OIDC issuers are https:// URLs (did you mean 'https://token.actions.githubusercontent.com'?)",
        ),
        (
            "attestations:\n  signers:\n    - publisher: {kind: GitHub, repository: 'https://github.com/pypa/pip'}\n",
            "signer", 7, "it is owner/name (e.g. pypa/sampleproject), not a URL",
        ),
        (
            "attestations:\n  signers:\n"
            "    - publisher: {kind: GitHub, repository: pypa/pip, workflow: .github/workflows/release.yml}\n",
            "signer", 7, "it is the file name under .github/workflows (e.g. 'release.yml')",
        ),
        (
            "attestations:\n  signers:\n    - issuer: https://token.actions.githubusercontent.com\n"
            "      identity: 'https://github.com/pypa/.*'\n",
            "glob", 8, "is a glob (only * and ? are special) but looks like a regex",
        ),
        ("match: {packages: ['requests>=2']}\n", "glob", 5, "version specifiers belong in exceptions"),
        ("match: {packages: [a, b], exclude: ['*']}\n", "match", 5, "match selects nothing"),
        ("match: {packages: ['corp-*'], exclude: ['corp-*']}\n", "match", 5, "match selects nothing"),
    ],
)
def test_finding(tmp_path: Path, spec: str, code: str, line: int, message: str) -> None:
    findings = lint_text(tmp_path, spec)
    found = [f for f in findings if f.code == code]
    assert found, findings
    assert message in found[0].issue.message
    assert found[0].issue.line == line
    assert found[0].issue.file == str(tmp_path / "p.yaml")


@pytest.mark.parametrize(
    "spec",
    [
        "match: {packages: ['corp-*'], exclude: ['corp-internal']}\nminimumAge: 1d\n",
        "attestations:\n  signers:\n    - issuer: https://token.actions.githubusercontent.com\n"
        "      identity: {regex: 'https://github\\.com/(pypa|pallets)/.*'}\n",
        "rules:\n  - {name: r, message: m,\n     expression: "
        "'file.uploaded != null && now - file.uploaded > duration(\"1d\")'}\n",
        "rules:\n  - {name: r, message: m,\n     expression: "
            "'attestations.all(a, !(\"sourceRepositoryRef\" in a.claims) || a.claims.sourceRepositoryRef != \"\")'}\n",
        # a wildcard issuer may be GitHub's, whose identities this fits, though GitLab's never could
        "attestations:\n  signers:\n    - {issuer: 'https://*', identity: 'https://github.com/pypa/*'}\n",
    ],
)
def test_clean(tmp_path: Path, spec: str) -> None:
    assert lint_text(tmp_path, spec) == []


def test_all_problems_of_a_document_and_the_rest_of_it(tmp_path: Path) -> None:
    """A bad value does not hide the other checks: lint goes on with a stand-in value."""
    spec = """\
        minimumAge: 7x
        colour: red
        rules:
          - {name: bad, expression: "file.name ==", message: m}
          - {name: typo, expression: "file.nmae == 'x'", message: m}
        """
    codes = [f.code for f in lint_text(tmp_path, spec)]
    assert codes == ["duration", "unknown-key", "cel-syntax", "cel-type"]


def test_every_file_is_linted_and_duplicate_names_found(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEADER + "  minimumAge: 1d\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text(HEADER + "  minimumAge: 1d\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("a: [unclosed\n", encoding="utf-8")
    findings = lint_paths([tmp_path, tmp_path / "missing.yaml"], OPTIONS)
    by_code = {f.code: f.issue for f in findings}
    assert set(by_code) == {"duplicate-policy", "yaml", "file"}
    assert by_code["duplicate-policy"].file == str(tmp_path / "b.yaml")
    assert by_code["duplicate-policy"].line == 3
    assert by_code["yaml"].file == str(tmp_path / "c.yaml")
    assert by_code["file"].message == "no such policy file or directory"


def test_unknown_keys_that_look_like_paths(tmp_path: Path) -> None:
    """An unknown key holding `.`, or only digits, is removed by its real key, and linting goes on."""
    spec = """\
        match.packages: [a]
        "7": x
        8: y
        minimumAge: 7x
        rules:
          - {name: typo, expression: "file.nmae == 'x'", message: m}
        """
    findings = lint_text(tmp_path, spec)
    assert [(f.code, f.issue.path, f.issue.line) for f in findings] == [
        ("unknown-key", "spec.match.packages", 5),
        ("unknown-key", "spec.7", 6),
        ("unknown-key", "spec.8", 7),
        ("duration", "spec.minimumAge", 8),
        ("cel-type", "spec.rules[0].expression", 10),
    ]


def test_an_unrepairable_document_keeps_every_code(tmp_path: Path) -> None:
    """A problem with no stand-in (a wrong type) stops linting there, but the others keep their codes."""
    codes = [f.code for f in lint_text(tmp_path, "minimumAge: 7x\nmode: enforced\ncolour: red\n")]
    assert codes == ["duration", "schema", "unknown-key"]


def _fields(value: msgspec.Struct) -> dict[str, object]:
    return {f.name: getattr(value, f.name) for f in msgspec.structs.fields(value)}


def test_representative_facts_set_every_field() -> None:
    facts = representative_facts()
    [attestation] = facts.attestations
    assert attestation.publisher is not None
    for record in (facts.file, attestation, attestation.publisher):
        assert [name for name, value in _fields(record).items() if value is None] == [], record


def test_sparse_facts_keep_only_required_fields() -> None:
    full, sparse = representative_facts(), sparse_facts()

    def required_only(record: Any) -> Any:
        required = [f.name for f in msgspec.structs.fields(record) if f.required]
        return type(record)(**{name: getattr(record, name) for name in required})

    assert sparse.file == required_only(full.file)
    assert sparse.file.uploaded is None
    expected = msgspec.structs.replace(required_only(full.attestations[0]), verified=False, error="missing")
    assert sparse.attestations == (expected,)


def test_error_text_unwraps_no_such_overload() -> None:
    """The compiled runner wraps an operator's reason twice; the reason itself is what is reported."""
    program = compile_expression("file.size > 'big'")
    activation = to_activation(representative_facts(), NOW)
    try:
        result = run(program, activation)
    except CELEvalError as err:
        result = err
    assert isinstance(result, CELEvalError)
    assert result.args[0] == "evaluation error" and result.args[2][0] == "no such overload"
    assert error_text(result).startswith("no such overload: IntType(1024) ")
    assert "StringType('big')" in error_text(result)
