"""The new keys as `gate lint` and `gate compile` know them: `spec.continuity` and `minimumAge`'s
`timeSources` and `backdating`; the rules they compile to, and exceptions that waive them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cli import main
from gate.policy.compile import load_policy_text
from gate.policy.model import STRUCTURED_RULES

TRUST = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: trust}
spec:
  match: {ecosystems: [pypi]}
  minimumAge: {age: 7d, timeSources: [index, transparencyLog], backdating: 1h}
  continuity: {noDowngrade: true, within: minor, ignoreAfter: 365d}
  exceptions:
    - {packages: ["sampleproject==4.0.0"], waive: [continuity], reason: moved publisher, expires: 2027-06-30}
  rules:
    - name: same-repository
      expression: 'continuity.project.publishers.all(p, attestations.exists(a, a.publisher.repository == p.repository))'
      message: published from another repository than the project's last attested release
"""


def test_the_trust_keys_compile_to_named_rules() -> None:
    (policy,) = load_policy_text(TRUST)
    names = [rule.name for rule in policy.rules]
    assert names == ["minimumAge", "minimumAge.backdating", "continuity", "same-repository"]
    assert {"continuity", "minimumAge.backdating"} <= set(STRUCTURED_RULES)
    continuity = policy.rules[2]
    assert continuity.native is not None and "continuity.minor.publishers" in continuity.expression
    assert 'duration("31536000s")' in continuity.expression


def test_lint_accepts_the_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(TRUST, encoding="utf-8")
    assert main(["lint", str(path)]) == 0, capsys.readouterr().out


@pytest.mark.parametrize(("spec", "expected"), [
    ("continuity: {noDowngrade: true, whithin: major}", "unknown key 'whithin' (did you mean 'within'?)"),
    ("continuity: {noDowngrade: true, within: patch}", "spec.continuity.within"),
    ("continuity: {noDowngrade: true, ignoreAfter: 1year}", "spec.continuity.ignoreAfter: invalid duration '1year'"),
    ("continuity: {within: major}", "spec.continuity"),  # noDowngrade says what it does: required
    ("minimumAge: {age: 7d, backdating: soon}", "spec.minimumAge"),
])
def test_lint_points_at_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"apiVersion: gate/v1\nkind: Policy\nmetadata: {{name: bad}}\nspec:\n  {spec}\n", encoding="utf-8")
    assert main(["lint", str(path)]) == 1
    assert expected in capsys.readouterr().out


def test_no_downgrade_false_judges_nothing() -> None:
    (policy,) = load_policy_text(TRUST.replace("noDowngrade: true", "noDowngrade: false"))
    assert "continuity" not in [rule.name for rule in policy.rules]


CASES = """\
now: 2026-11-01T00:00:00Z
cases:
  - name: same publisher as 4.0.0
    file: {name: sampleproject, version: 4.0.1, uploaded: 2026-10-01T00:00:00Z}
    attestations:
      - {verified: true, signedTime: 2026-10-01T00:00:00Z,
         publisher: {kind: GitHub, repository: pypa/sampleproject, workflow: release.yml}}
    continuity:
      major: {version: 4.0.0, uploaded: 2026-09-01T00:00:00Z,
              publishers: [{kind: GitHub, repository: pypa/sampleproject, workflow: release.yml}]}
    expect: {verdict: allow}
  - name: no provenance after 4.0.0 had some
    file: {name: sampleproject, version: 4.0.1, uploaded: 2026-10-01T00:00:00Z}
    continuity:
      major: {version: 4.0.0, uploaded: 2026-09-01T00:00:00Z,
              publishers: [{kind: GitHub, repository: pypa/sampleproject, workflow: release.yml}]}
    expect: {verdict: deny, violations: [continuity]}
  - name: no history given is unknown
    file: {name: sampleproject, version: 4.0.1, uploaded: 2026-10-01T00:00:00Z}
    expect: {verdict: deny, violations: [continuity]}
"""


def test_gate_test_cases_can_assert_the_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    without_rules = TRUST.split("  rules:", maxsplit=1)[0]
    (tmp_path / "trust.yaml").write_text(without_rules.replace("within: minor", "within: major"))
    cases = tmp_path / "tests" / "trust.gate-test.yaml"
    cases.parent.mkdir()
    cases.write_text(CASES, encoding="utf-8")
    assert main(["test", str(cases)]) == 0, capsys.readouterr().out
