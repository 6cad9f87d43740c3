"""Lint findings as text (`file:line: level: message`), JSON, SARIF or GitHub annotations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum

from gate.errors import Finding
from gate.policy.lint import CODES
from gate.report.github import workflow_command
from gate.report.sarif import SarifResult, SarifRule, sarif_text


class LintFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    GITHUB = "github"


def _message(finding: Finding) -> str:
    issue = finding.issue
    return f"{issue.path}: {issue.message}" if issue.path else issue.message


def _where(finding: Finding) -> str:
    issue = finding.issue
    if issue.file and issue.line:
        return f"{issue.file}:{issue.line}"
    return issue.file or "<input>"


def summary(findings: Sequence[Finding]) -> str:
    errors = sum(f.is_error for f in findings)
    warnings = len(findings) - errors
    return f"{errors} error(s), {warnings} warning(s)"


def text(findings: Sequence[Finding]) -> str:
    lines = [f"{_where(f)}: {f.level}: {_message(f)} [{f.code}]" for f in findings]
    return "\n".join([*lines, summary(findings)])


def as_json(findings: Sequence[Finding]) -> str:
    items = [
        {
            "file": f.issue.file, "line": f.issue.line, "level": f.level, "code": f.code,
            "path": f.issue.path, "message": f.issue.message,
        }
        for f in findings
    ]
    errors = sum(f.is_error for f in findings)
    return json.dumps({"errors": errors, "warnings": len(findings) - errors, "findings": items}, indent=2)


def sarif(findings: Sequence[Finding]) -> str:
    rules = [SarifRule(name, code.description, code.level) for name, code in CODES.items()]
    results = [SarifResult(f.code, f.level, _message(f), f.issue.file, f.issue.line) for f in findings]
    return sarif_text("gate lint", rules, results)


def github(findings: Sequence[Finding]) -> str:
    lines = [
        workflow_command(f.level, _message(f), file=f.issue.file, line=f.issue.line, title=f"gate lint ({f.code})")
        for f in findings
    ]
    return "\n".join([*lines, summary(findings)])


def render(findings: Sequence[Finding], fmt: LintFormat) -> str:
    match fmt:
        case LintFormat.TEXT:
            return text(findings)
        case LintFormat.JSON:
            return as_json(findings)
        case LintFormat.SARIF:
            return sarif(findings)
        case LintFormat.GITHUB:
            return github(findings)
