"""`gate lint`: every problem in policy files, from YAML syntax to rules that can never hold.

Runs the loading pipeline (load → schema → model → compile) file by file so one broken file does not
hide the problems of the others, then adds checks that need judgement rather than a schema: exceptions
that expired or soon will, signers and matches that can never match, CEL that does not type-check.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.errors import Issue, PolicyError
from gate.policy.lint_cel import cel_issues
from gate.policy.lint_checks import exception_issues, match_issues, signer_issues
from gate.policy.load import Path_, RawPolicy, load_text, policy_files
from gate.policy.model import build_policy
from gate.policy.schema import schema_issues


@dataclass(frozen=True)
class Finding:
    """One lint result: a stable `code` (the SARIF rule id) and the issue it describes."""

    code: str
    issue: Issue

    @property
    def level(self) -> str:
        return self.issue.level

    @property
    def is_error(self) -> bool:
        return self.issue.level == "error"


# Codes of findings, with a one-line description (used as SARIF rule metadata).
CODES = {
    "yaml": "The file is not valid YAML.",
    "file": "A policy path does not exist or holds no policy files.",
    "schema": "The policy does not follow the gate/v1 schema.",
    "unknown-key": "A key the schema does not know (often a typo).",
    "duration": "A duration that does not parse.",
    "regex": "An invalid regular expression.",
    "expiry": "An exception expiry that does not parse.",
    "waive": "An exception waives a rule that does not exist or is not in this policy.",
    "rule-name": "A rule name used twice.",
    "version-specifier": "An invalid version specifier in an exception.",
    "cel-syntax": "A CEL expression that does not parse.",
    "cel-type": "A CEL expression that cannot be evaluated against the facts document.",
    "cel-null": "A CEL expression that fails (and so denies) when optional facts are missing.",
    "duplicate-policy": "Two policies share a name.",
    "expired-exception": "An exception has expired.",
    "expiring-exception": "An exception expires soon.",
    "signer": "A signer that can never match any attestation.",
    "glob": "A glob that looks like a regular expression, or cannot match a package name.",
    "match": "A match that selects no file.",
}

# (message prefix, code, a valid stand-in value that lets linting go on past the bad one)
_KNOWN: tuple[tuple[str, str, str | None], ...] = (
    ("unknown key", "unknown-key", None),
    ("invalid duration", "duration", "1d"),
    ("invalid regex", "regex", ".*"),
    ("invalid expiry", "expiry", "2999-12-31"),
    ("CEL syntax error", "cel-syntax", "true"),
    ("Invalid specifier", "version-specifier", "lint-placeholder"),
    ("no rule named", "waive", None),
    ("rule name", "rule-name", None),
)


def _code(issue: Issue, default: str) -> str:
    return next((code for prefix, code, _ in _KNOWN if issue.message.startswith(prefix)), default)


def _findings(code: str, issues: Iterable[Issue]) -> Iterator[Finding]:
    for issue in issues:
        yield Finding(_code(issue, code), issue)


def _parse_path(text: str) -> Path_:
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", text))


def _repaired(raw: RawPolicy, issues: list[Issue]) -> RawPolicy | None:
    """The document with unknown keys removed and bad values replaced by valid stand-ins, so the
    other checks still run; None when some problem has no stand-in (a missing key, a wrong type)."""
    data = copy.deepcopy(raw.data)
    for issue in issues:
        path = _parse_path(issue.path)
        known = next(((prefix, value) for prefix, _, value in _KNOWN if issue.message.startswith(prefix)), None)
        if not path or known is None or (known[1] is None and known[0] != "unknown key"):
            return None
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if known[1] is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = known[1]
    repaired = RawPolicy(data=data, file=raw.file, index=raw.index, lines=raw.lines)
    return None if schema_issues(repaired) else repaired


@dataclass(frozen=True)
class LintOptions:
    """`now` for expiry checks; `claim_names` are the Fulcio claims a facts document may carry."""

    now: dt.datetime
    expiry_warning: dt.timedelta = dt.timedelta(days=14)
    claim_names: tuple[str, ...] = ()


def lint_document(raw: RawPolicy, options: LintOptions) -> tuple[str | None, list[Finding]]:
    """The policy's name (when it has one) and every finding for one YAML document."""
    findings = list(_findings("schema", schema_issues(raw)))
    if findings:
        repaired = _repaired(raw, [f.issue for f in findings])
        if repaired is None:
            return None, findings
        raw = repaired
    policy, issues = build_policy(raw)
    findings += _findings("schema", issues)
    if policy is None:
        return None, findings
    findings += [
        Finding("cel-type" if i.level == "error" else "cel-null", i) for i in cel_issues(policy, options.claim_names)
    ]
    findings += [Finding(code, issue) for code, issue in exception_issues(policy, options.now, options.expiry_warning)]
    findings += [Finding(code, issue) for code, issue in signer_issues(policy)]
    findings += [Finding(code, issue) for code, issue in match_issues(policy)]
    return policy.name, findings


def _documents(root: Path) -> Iterator[RawPolicy | Finding]:
    try:
        files = list(policy_files(root))
    except PolicyError as err:
        yield from _findings("file", err.issues)
        return
    if not files:
        yield Finding("file", Issue("", "no *.yaml or *.yml policy files here", str(root)))
    for file in files:
        try:
            yield from load_text(file.read_text(encoding="utf-8"), str(file))
        except PolicyError as err:
            yield from _findings("yaml", err.issues)


def lint_paths(paths: Sequence[Path], options: LintOptions) -> list[Finding]:
    """Every finding for every policy under `paths`, in file and line order."""
    findings: list[Finding] = []
    names: dict[str, str] = {}
    for root in paths:
        for doc in _documents(root):
            if isinstance(doc, Finding):
                findings.append(doc)
                continue
            name, found = lint_document(doc, options)
            findings += found
            if name is None:
                continue
            if name in names:
                where = ("metadata", "name")
                message = f"policy name {name!r} is already used in {names[name]}"
                findings.append(
                    Finding("duplicate-policy", Issue("metadata.name", message, doc.file, doc.line_of(where)))
                )
            names.setdefault(name, doc.file)
    return sorted(findings, key=lambda f: (f.issue.file or "", f.issue.line or 0, f.issue.path, f.issue.message))
