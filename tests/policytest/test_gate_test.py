"""`gate test`: YAML policy unit tests, their summary, exit code and JUnit XML."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gate.cli import main
from gate.errors import PolicyError
from gate.policytest.cases import ASSERTED, load_case_file
from tests.conftest import REPO
from tests.test_cli import WHEEL

POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: age}
spec:
  minimumAge: 7d
  attestations:
    required: true
    signers:
      - publisher: {kind: GitHub, repository: "pypa/*"}
"""
CASES = """\
now: 2026-11-22T00:00:00Z
cases:
  - name: old and attested
    file: {name: Sample_Project, version: 1.0, uploaded: 2026-01-01T00:00:00Z}
    attestations:
      - verified: true
        publisher: {kind: GitHub, repository: pypa/sampleproject}
    expect: {verdict: allow, violations: [], policies: [age]}
  - name: new and attested
    file: {name: sampleproject, version: 1.0, uploaded: 2026-11-21T00:00:00Z}
    attestations:
      - {verified: true, publisher: {kind: GitHub, repository: pypa/sampleproject}}
    expect: {verdict: deny, violations: [age/minimumAge]}
"""


def project(tmp_path: Path, cases: str = CASES) -> Path:
    (tmp_path / "policies" / "tests").mkdir(parents=True)
    (tmp_path / "policies" / "age.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "policies" / "tests" / "age.gate-test.yaml").write_text(cases, encoding="utf-8")
    return tmp_path / "policies"


def test_shipped_policy_tests_pass_and_cover_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(REPO / "policies")]) == 0
    out = capsys.readouterr().out
    assert "no case exercises" not in out
    assert out.splitlines()[-1].endswith(" passed, 0 failed")


def test_passing_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(project(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "PASS " in out
    assert out.splitlines()[-1] == "2 passed, 0 failed"


def test_failures_are_explained_and_written_as_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = CASES.replace("violations: [age/minimumAge]", "violations: [attestations.required]")
    junit = tmp_path / "report.xml"
    assert main(["test", "--junit", str(junit), str(project(tmp_path, wrong))]) == 1
    out = capsys.readouterr().out
    assert "FAIL " in out
    assert "expected violation 'attestations.required' did not occur" in out
    assert "unexpected violation age/minimumAge: uploaded 2026-11-21T00:00:00Z; allowed from 2026-11-28T00:00:00Z" in (
        out
    )
    assert out.splitlines()[-1] == "1 passed, 1 failed"
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    failure = root.find("./testsuite/testcase[@name='new and attested']/failure")
    assert failure is not None
    assert "did not occur" in (failure.get("message") or "")


def test_asserted_attestation_is_marked(tmp_path: Path) -> None:
    cases = load_case_file(project(tmp_path) / "tests" / "age.gate-test.yaml")
    case = cases.cases[0]
    assert case.facts is not None and case.facts.name == "sample-project"
    assert case.facts.filename == "sample_project-1.0-py3-none-any.whl"
    assert case.attestations[0].source == ASSERTED
    assert cases.policies == (tmp_path / "policies",)


def test_broken_policy_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path)
    (root / "age.yaml").write_text(POLICY.replace("7d", "7x"), encoding="utf-8")
    assert main(["test", str(root)]) == 1
    out = capsys.readouterr().out
    assert "cannot load policies" in out and "invalid duration '7x'" in out


def test_untested_policy_is_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path)
    (root / "other.yaml").write_text(POLICY.replace("name: age", "name: other")
                                     .replace("minimumAge: 7d", "minimumAge: 7d\n  match: {packages: [nothing-here]}"),
                                     encoding="utf-8")
    assert main(["test", str(root)]) == 0
    out = capsys.readouterr().out
    assert "no case exercises policy 'other'" in out
    assert "no case exercises policy 'age'" not in out
    assert out.splitlines()[-1] == "2 passed, 0 failed"


NO_POLICY = """\
now: 2026-11-22T00:00:00Z
cases:
  - name: a package no policy matches
    file: {ecosystem: conda, name: numpy, version: 2.2.3}
    expect: {verdict: deny}
  - name: a package no policy matches, on purpose
    file: {ecosystem: conda, name: numpy, version: 2.2.3}
    expect: {verdict: deny, violations: [gate/gate.unmatched], policies: []}
"""


def test_a_case_no_policy_matches_fails_unless_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path, NO_POLICY)
    (root / "age.yaml").write_text(POLICY + "  match: {ecosystems: [pypi]}\n", encoding="utf-8")
    assert main(["test", str(root)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("FAIL ") and lines[0].endswith("a package no policy matches")
    assert "no policy matches this file, so the case tests nothing (write `policies: []` if it should)" in lines[1]
    assert lines[2].startswith("PASS ") and lines[2].endswith("a package no policy matches, on purpose")
    assert lines[-1] == "1 passed, 1 failed"


def test_case_defaults_come_from_the_filename(tmp_path: Path) -> None:
    cases = """\
        now: 2026-11-22T00:00:00Z
        cases:
          - {name: w, file: {name: a, version: 2.0rc1}, expect: {verdict: allow}}
          - {name: s, file: {name: a, version: '1.0', filename: a-1.0.tar.gz}, expect: {verdict: allow}}
          - {name: c, file: {ecosystem: conda, name: b, version: 1.0a1}, expect: {verdict: allow}}
          - {name: f, file: {name: a, version: '1.0', filename: a.exe}, expect: {verdict: allow}}
          - {name: k, file: {name: a, version: '1.0', kind: file, prerelease: true}, expect: {verdict: allow}}
        """
    path = tmp_path / "x.gate-test.yaml"
    path.write_text(textwrap.dedent(cases), encoding="utf-8")
    facts = [c.facts for c in load_case_file(path).cases]
    assert [(f.filename, f.kind.value, f.prerelease) for f in facts if f is not None] == [
        ("a-2.0rc1-py3-none-any.whl", "wheel", True),
        ("a-1.0.tar.gz", "sdist", False),
        ("b-1.0a1-0.conda", "conda", True),
        ("a.exe", "file", False),
        ("a-1.0-py3-none-any.whl", "file", True),
    ]


def test_no_test_files_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(tmp_path)]) == 2
    assert "no *.gate-test.yaml files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cases", "message"),
    [
        (
            "now: 2026-01-01\ncases:\n  - name: x\n    file: {name: a, version: '1'}\n    expect: {verdict: maybe}\n",
            "cases[0].expect.verdict: 'maybe' is not one of ['allow', 'deny']",
        ),
        (
            "now: 2026-01-01\ncases:\n  - name: x\n    file: {name: a, version: '1', uploded: 2026-01-01}\n"
            "    expect: {verdict: allow}\n",
            "cases[0].file.uploded: unknown key 'uploded' (did you mean 'uploaded'?)",
        ),
        (
            "now: 2026-01-01\ncases:\n  - name: x\n    file: {name: a, version: '1'}\n"
            "    attestations: [{identity: x}]\n    expect: {verdict: allow}\n",
            "cases[0].attestations[0]: 'verified' is required",
        ),
        (
            "now: 2026-01-01\ncases:\n  - name: x\n    file: {name: a, version: '1'}\n    artifact: a.whl\n"
            "    expect: {verdict: allow}\n",
            "a case gives either asserted facts {file, attestations, vulnerabilities, continuity} or a real {artifact",
        ),
        (
            "cases:\n  - name: x\n    file: {name: a, version: '1'}\n    expect: {verdict: allow}\n",
            "no evaluation time",
        ),
        # times past the last moment representable in UTC overflowed when the facts were built
        (
            "now: 9999-12-31T23:59:59-14:00\ncases:\n  - name: x\n    file: {name: a, version: '1'}\n"
            "    expect: {verdict: allow}\n",
            "x.gate-test.yaml:1: now: '9999-12-31T23:59:59-14:00' is outside the years 1 to 9999 in UTC",
        ),
        (
            "now: 2026-01-01\ncases:\n  - name: x\n"
            "    file: {name: a, version: '1', uploaded: '9999-12-31T23:00-12:00'}"
            "\n    expect: {verdict: allow}\n",
            "x.gate-test.yaml:3: cases[0]: '9999-12-31T23:00-12:00' is outside the years 1 to 9999 in UTC",
        ),
        ("now: 2026-01-01\nnow: 2027-01-01\ncases: []\n", "x.gate-test.yaml:2: duplicate key 'now'"),
    ],
)
def test_invalid_case_files(tmp_path: Path, cases: str, message: str) -> None:
    path = tmp_path / "x.gate-test.yaml"
    path.write_text(textwrap.dedent(cases), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_case_file(path)
    assert any(message in str(issue) for issue in raised.value.issues), raised.value.diagnostics()


def test_an_artifact_gate_cannot_name_is_denied_as_check_denies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = """\
now: 2026-11-22T00:00:00Z
cases:
  - name: a wheel whose name packaging cannot parse
    artifact: evil__pkg-1.0-py3-none-any.whl
    expect: {verdict: deny, violations: [gate/gate.unjudgeable], policies: [gate]}
"""
    root = project(tmp_path, cases)
    (root / "tests" / "evil__pkg-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert main(["test", str(root)]) == 0, capsys.readouterr().out


def test_an_unwritable_junit_report_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--junit", str(tmp_path / "no" / "such" / "dir.xml"), str(project(tmp_path))]) == 2
    assert "cannot write the JUnit report" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["artifact: /dev/zero", "artifact: .", "evidence: [/dev/zero]"])
def test_an_artifact_or_evidence_that_is_not_a_regular_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """`artifact: /dev/zero` read forever; a test file arrives in a pull request."""
    case = "\n    ".join([f"artifact: ../../examples/{WHEEL.name}", where])
    if where.startswith("artifact"):
        case = where
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "age.yaml").write_text(POLICY, encoding="utf-8")
    tests = tmp_path / "policies" / "tests"
    tests.mkdir()
    (tests / "x.gate-test.yaml").write_text(
        f"now: 2026-01-01T00:00:00Z\ncases:\n  - name: a\n    {case}\n    expect: {{verdict: deny}}\n", encoding="utf-8"
    )
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / WHEEL.name).write_bytes(WHEEL.read_bytes())
    assert main(["test", str(tmp_path / "policies")]) == 1
    out = capsys.readouterr().out
    assert "cannot build facts: " in out and "is not a regular file" in out


VULN_POLICY = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: vulns}
spec:
  vulnerabilities:
    maxSeverity: medium
    ignore:
      - ids: [CVE-2024-35195]
        reason: not reachable
        owner: security@example.com
        expires: 2027-01-31
"""
VULN_CASES = """\
now: 2026-11-22T00:00:00Z
cases:
  - name: a medium vulnerability passes
    file: {name: requests, version: 2.31.0}
    vulnerabilities: [{id: GHSA-j8r2-6x86-q33q, severity: 6.1, severityLabel: MODERATE, fixed: [2.31.0]}]
    expect: {verdict: allow, violations: []}
  - name: a high one does not
    file: {name: setuptools, version: 69.0.0}
    vulnerabilities: [{id: GHSA-cx63-2mw6-8hw5, severity: 8.8, fixed: [70.0.0]}]
    expect: {verdict: deny, violations: [vulnerabilities.maxSeverity]}
  - name: an ignored one, by its alias, passes
    file: {name: requests, version: 2.31.0}
    vulnerabilities: [{id: GHSA-9wx4-h78v-vm56, aliases: [CVE-2024-35195], severity: 9.5}]
    expect: {verdict: allow, violations: []}
  - name: a malicious report denies
    file: {name: num2words, version: 0.5.15}
    vulnerabilities: [{id: MAL-2025-6794, malicious: true}]
    expect: {verdict: deny, violations: [vulnerabilities.malicious]}
"""


def test_cases_can_assert_vulnerabilities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Policies with `spec.vulnerabilities` are unit-tested like the rest: a case asserts the OSV records."""
    (tmp_path / "policies" / "tests").mkdir(parents=True)
    (tmp_path / "policies" / "vulns.yaml").write_text(VULN_POLICY)
    (tmp_path / "policies" / "tests" / "vulns.gate-test.yaml").write_text(VULN_CASES)
    code = main(["test", str(tmp_path / "policies")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 passed" in out
