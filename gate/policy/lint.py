"""`gate lint`: every problem in policy files, from YAML syntax to rules that can never hold.

Runs the loading pipeline (load → schema → model → compile) file by file so one broken file does not
hide the problems of the others, then adds checks that need judgement rather than a schema: exceptions
that expired or soon will, signers and matches that can never match, CEL that does not type-check,
and policies that look fine but are weak (`gate.policy.lint_scope`), down to ecosystems the whole set
leaves ungoverned.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gate.errors import Finding, Issue, Level, PolicyError
from gate.policy.compile import duplicate_name
from gate.policy.lint_cel import cel_issues
from gate.policy.lint_checks import exception_issues, match_issues, signer_issues
from gate.policy.lint_scope import predicate_type_issues, scope_issues, ungoverned_issues, weak_signer_issues
from gate.policy.load import RawPolicy, load_file, policy_files
from gate.policy.model import Policy, build_policy
from gate.policy.schema import Problem, schema_issues, schema_problems


@dataclass(frozen=True)
class Code:
    """What a finding code means, and the level its findings usually have (SARIF rule metadata)."""

    description: str
    level: Level = Level.ERROR


CODES = {
    "yaml": Code("The file is not valid YAML."),
    "file": Code("A policy path does not exist, holds no policy files, or cannot be read (not UTF-8, too large)."),
    "empty-file": Code("A policy file with no YAML document (empty, or only comments): it holds no policy."),
    "duplicate-key": Code("A key given twice in one mapping; YAML would silently keep only the last."),
    "yaml-alias": Code("A YAML alias or merge key, which policies do not allow."),
    "yaml-depth": Code("YAML nested deeper than policies allow."),
    "yaml-size": Code("A file with more YAML values than policies allow."),
    "cel-size": Code("A file whose rule expressions together are longer than policies allow (64 KiB)."),
    "schema": Code("The policy does not follow the gate/v1 schema."),
    "unknown-key": Code("A key the schema does not know (often a typo)."),
    "duration": Code("A duration that does not parse."),
    "regex": Code("An invalid regular expression."),
    "expiry": Code("An exception expiry that does not parse."),
    "waive": Code("An exception waives a rule that does not exist or is not in this policy.", Level.WARNING),
    "rule-name": Code("A rule name used twice."),
    "version-specifier": Code("An invalid version specifier in an exception."),
    "cel-syntax": Code("A CEL expression that does not parse."),
    "cel-type": Code("A CEL expression that does not type-check against the facts document (unknown field, "
                     "function or variable, operator on the wrong types, misused macro, result not a bool)."),
    "cel-cost": Code("A CEL expression that may take more evaluation steps than the cost budget."),
    "cel-null": Code("A CEL expression that fails (and so denies) when optional facts are missing.", Level.WARNING),
    "duplicate-policy": Code("Two policies share a name."),
    "expired-exception": Code("An exception has expired."),
    "expiring-exception": Code("An exception expires soon.", Level.WARNING),
    "signer": Code("A signer that can never match any attestation."),
    "glob": Code("A glob that looks like a regular expression, or cannot match a package name.", Level.WARNING),
    "match": Code("A match that selects no file."),
    "any-signer": Code("Attestations are required without signers: any Sigstore identity passes.", Level.WARNING),
    "broad-signer": Code("A signer pattern anyone can match with an account or project of their own.", Level.WARNING),
    "broad-exception": Code("An exception that selects every package.", Level.WARNING),
    "slsa-any-source": Code("attestations.slsa names no one source repository: provenance from any passes.",
                            Level.WARNING),
    "predicate-types-exclusive": Code(
        "predicateTypes lists two SLSA provenance versions: each is asked of every file, which has one.", Level.WARNING
    ),
    "empty-policy": Code("A policy with no rule: it allows every file it matches.", Level.WARNING),
    "ungoverned-ecosystem": Code(
        "No policy in enforce mode judges an ecosystem's packages in general: its files are denied by default "
        "as unmatched, or allowed unchecked by audit-mode policies.",
        Level.WARNING,
    ),
}

# The policy schema's formats: (finding code, a valid stand-in value that lets linting go on past a bad one).
_FORMATS = {
    "duration": ("duration", "1d"),
    "regex": ("regex", ".*"),
    "expiry": ("expiry", "2999-12-31"),
    "package-selector": ("version-specifier", "lint-placeholder"),
    "cel": ("cel-syntax", "true"),
}


def _fix(problem: Problem) -> tuple[str, str | None] | None:
    """(code, stand-in) of a schema problem lint can step past: the bad value is replaced by the stand-in,
    or an unknown key removed (stand-in None); None for a problem it cannot (a missing key, a wrong type)."""
    if problem.kind == "unknown-key":
        return "unknown-key", None
    if problem.kind is not None and problem.kind in _FORMATS:
        return _FORMATS[problem.kind]
    return None


def _code(problem: Problem) -> str:
    fix = _fix(problem)
    return "schema" if fix is None else fix[0]


def _repaired(raw: RawPolicy, problems: Sequence[Problem]) -> RawPolicy | None:
    """The document with unknown keys removed and bad values replaced by valid stand-ins, so the
    other checks still run; None when a problem has no fix or it is still not schema-valid."""
    data = copy.deepcopy(raw.data)
    for at, problem in {p.at: p for p in problems}.items():  # a path's keys as written, whatever they hold
        fix = _fix(problem)
        if fix is None:
            return None
        parent = data
        for part in at[:-1]:
            parent = parent[part]
        if fix[1] is None:
            del parent[at[-1]]
        else:
            parent[at[-1]] = fix[1]
    repaired = RawPolicy(data=data, file=raw.file, lines=raw.lines)
    return None if schema_issues(repaired) else repaired


@dataclass(frozen=True)
class LintOptions:
    """`now` for expiry checks, and how far ahead an expiry is worth a warning."""

    now: dt.datetime
    expiry_warning: dt.timedelta = dt.timedelta(days=14)


def lint_document(raw: RawPolicy, options: LintOptions) -> tuple[Policy | None, list[Finding]]:
    """The policy (when it could be built) and every finding for one YAML document."""
    problems = schema_problems(raw)
    findings = [Finding(_code(p), p.issue) for p in problems]
    if problems:
        repaired = _repaired(raw, problems)
        if repaired is None:
            return None, findings
        raw = repaired
    policy, built = build_policy(raw)
    findings += built
    if policy is None:
        return None, findings
    findings += cel_issues(policy)
    findings += exception_issues(policy, options.now, options.expiry_warning)
    for check in (signer_issues, match_issues, weak_signer_issues, predicate_type_issues, scope_issues):
        findings += check(policy)
    return policy, findings


def _documents(root: Path) -> Iterator[RawPolicy | Finding]:
    """The documents under `root` as `load_paths` reads them, file by file, so that a file with a YAML
    error does not hide the documents of the others."""
    try:
        files = list(policy_files(root))
    except PolicyError as err:
        yield from (Finding("file", issue) for issue in err.issues)
        return
    if not files:
        yield Finding("file", Issue("", "no *.yaml or *.yml policy files here", str(root)))
    for file in files:
        try:
            yield from load_file(file)
        except PolicyError as err:
            yield from (Finding(issue.code or "yaml", issue) for issue in err.issues)


def lint_paths(paths: Sequence[Path], options: LintOptions) -> list[Finding]:
    """Every finding for every policy under `paths`, in file and line order."""
    findings: list[Finding] = []
    names: dict[str, str] = {}
    policies: list[Policy] = []
    for root in paths:
        for doc in _documents(root):
            if isinstance(doc, Finding):
                findings.append(doc)
                continue
            policy, found = lint_document(doc, options)
            findings += found
            if policy is None:
                continue
            policies.append(policy)
            if (duplicate := duplicate_name(doc, policy.name, names)) is not None:
                findings.append(Finding("duplicate-policy", duplicate))
    if paths and not any(f.is_error for f in findings):  # judged only on a policy set that loads
        findings += ungoverned_issues(policies, str(paths[0]))
    return sorted(findings, key=lambda f: (f.issue.file or "", f.issue.line or 0, f.issue.path, f.issue.message))
