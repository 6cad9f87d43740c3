"""CEL findings of `gate lint`: the static check every loader runs, and null-sensitivity.

Type errors, bad macros, regexes RE2 rejects and rules over the cost budget come from the same
static check `check`, `serve` and `test` run when they load a policy (`gate.policy.compile.compile_rules`).
A custom rule that passes it is then run once against a facts document with every optional fact
missing: an error there means the rule fails closed, and so denies, whenever those facts are unknown.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from functools import cache
from typing import Any, TypeVar

import celpy
import msgspec

from gate.errors import Finding, Issue, Level
from gate.facts import (
    GITHUB_ISSUER,
    AttestationFact,
    Continuity,
    Ecosystem,
    Facts,
    FileFacts,
    FileKind,
    LineRelease,
    Publisher,
    Vulnerability,
)
from gate.policy.activation import to_activation
from gate.policy.cel import outcome
from gate.policy.compile import compile_rules
from gate.policy.load import format_path
from gate.policy.model import CustomRule, Policy

Record = TypeVar("Record", FileFacts, AttestationFact, Vulnerability)

_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_OPERATORS = {
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
}


@cache
def _interpreter() -> celpy.Environment:
    """cel-python's tree-walking runner: slower than gate's compiled one, but its errors name the
    operator that failed, which lint turns into a position. Created after `gate.policy.cel` (imported
    above), so it reuses the process-wide parser that module set up."""
    return celpy.Environment()


def _program(expression: str) -> Any:
    env = _interpreter()
    return env.program(env.compile(expression))


def representative_facts() -> Facts:
    """Facts with every field set, as a fully verified PyPI wheel would have them."""
    file = FileFacts(
        ecosystem=Ecosystem.PYPI,
        name="example",
        version="1.0.0",
        filename="example-1.0.0-py3-none-any.whl",
        kind=FileKind.WHEEL,
        sha256="0" * 64,
        size=1024,
        index="https://pypi.org/simple/",
        uploaded=_NOW - dt.timedelta(days=30),
        uploadedFrom="upload-time",
        subdir="noarch",
        build="py_0",
        signedTime=_NOW - dt.timedelta(days=30, minutes=1),
        signedFrom="transparency-log",
    )
    publisher = Publisher(
        kind="GitHub",
        repository="example/example",
        workflow="release.yml",
        environment="pypi",
        workflowFilepath=".gitlab-ci.yml",
        email="release@example.com",
    )
    attestation = AttestationFact(
        verified=True,
        source="lint",
        error="",
        predicateType="https://docs.pypi.org/attestations/publish/v1",
        issuer=GITHUB_ISSUER,
        identity="https://github.com/example/example/.github/workflows/release.yml@refs/tags/v1.0.0",
        publisher=publisher,
        integratedTime=_NOW - dt.timedelta(days=30),
        targetChannel="https://conda.example/channel",
        signedTime=_NOW - dt.timedelta(days=30, minutes=1),
        builderId="https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0",
        sourceUri="github.com/example/example",
        sourceRef="refs/tags/v1.0.0",
        sourceDigest="0" * 40,
        sourceBranch="refs/heads/main",
        workflowInputs={"version": "1.0.0"},
    )
    vulnerability = Vulnerability(
        id="GHSA-0000-0000-0000", aliases=("CVE-2000-0000",), summary="example", severity=5.0,
        severityLabel="MODERATE", fixed=("1.0.1",), published=_NOW - dt.timedelta(days=60),
        modified=_NOW - dt.timedelta(days=50),
    )
    earlier = LineRelease(version="0.9.0", uploaded=_NOW - dt.timedelta(days=90), publishers=(publisher,))
    continuity = Continuity(known=True, reason="", minor=earlier, major=earlier, project=earlier, release=earlier)
    return Facts(file=file, attestations=(attestation,), vulnerabilities=(vulnerability,), continuity=continuity)


def _defaults(value: Record) -> Record:
    """`value` with every field that has a default reset to it."""
    reset: dict[str, Any] = {}
    for f in msgspec.structs.fields(value):
        if f.default is not msgspec.NODEFAULT:
            reset[f.name] = f.default
        elif f.default_factory is not msgspec.NODEFAULT:
            reset[f.name] = f.default_factory()
    return msgspec.structs.replace(value, **reset)


def sparse_facts() -> Facts:
    """The representative facts with every optional field missing: no upload time, one unverified
    attestation that carries nothing but its error."""
    full = representative_facts()
    attestation = msgspec.structs.replace(_defaults(full.attestations[0]), verified=False, error="missing")
    vulnerability = _defaults(full.vulnerabilities[0])
    return Facts(file=_defaults(full.file), attestations=(attestation,), vulnerabilities=(vulnerability,))


def _readable(message: str) -> str:
    message = message.split(" (in activation", 1)[0]
    message = re.sub(r"(?:\w+Type\(.*?\)|None) (<class )", r"\1", message)
    message = re.sub(r"<class '(?:celpy\.celtypes\.)?(\w+?)(?:Type)?'>", lambda m: m.group(1).lower(), message)
    message = message.replace("nonetype", "null").replace("none", "null")
    message = re.sub(r"^no such overload: (\w+) != (\w+)$", r"no such overload for (\1, \2)", message)
    message = re.sub(
        r"found no matching overload for Token\('RULE', '(\w+)'\) applied to '\((.*)\)'",
        lambda m: f"no operator {_OPERATORS.get(m.group(1), m.group(1))} for ({m.group(2)})",
        message,
    )
    return message[:200]


def _position(expression: str, message: str) -> tuple[int, int] | None:
    """(line, column), 1-based, of what the error names, when it can be found in the expression."""
    patterns = []
    if found := re.search(r"no such member in mapping: '(\w+)'", message):
        patterns.append(rf"\.\s*{re.escape(found.group(1))}\b")
    if found := re.search(r"undeclared reference to '(\w+)'", message):
        patterns.append(rf"\b{re.escape(found.group(1))}\b")
    if found := re.search(r"Token\('RULE', '(\w+)'\)", message):
        operator = _OPERATORS.get(found.group(1))
        if operator:
            patterns.append(re.escape(operator) if operator != "in" else r"\bin\b")
    for pattern in patterns:
        if hit := re.search(pattern, expression):
            before = expression[: hit.start()]
            return before.count("\n") + 1, hit.start() - (before.rfind("\n") + 1) + 1
    return None


def _run(program: Any, activation: dict[str, Any]) -> str | None:
    """Why the rule could not produce a bool for this document, or None when it did."""
    result = outcome(program, activation)
    if result.error is not None:
        return result.error
    if result.passed is None:
        return f"the rule yields {type(result.value).__name__.removesuffix('Type').lower()}, not a bool"
    return None


def _warning(policy: Policy, rule: CustomRule, text: str) -> Issue:
    where = _position(rule.expression, text)
    reason = _readable(text) + (f" at line {where[0]}, column {where[1]} of the expression" if where else "")
    message = f"rule {rule.name!r} fails (and denies) when optional facts are missing: {reason}"
    return Issue(format_path(rule.path), message, policy.file, policy.raw.line_of(rule.path), Level.WARNING)


def cel_issues(policy: Policy) -> Iterator[Finding]:
    """A finding for every rule that cannot be used (errors: cel-syntax, cel-type, cel-cost, regex) and
    every custom rule that denies when optional facts are missing (warnings: cel-null)."""
    compiled, problems = compile_rules(policy)
    yield from problems
    usable = {rule.name for rule in compiled}
    sparse = to_activation(sparse_facts(), _NOW)
    for rule in policy.rules:
        if rule.name not in usable:
            continue
        try:
            program = _program(rule.expression)
        except Exception:  # the compiled runner took it; the interpreter only words errors better
            continue
        error = _run(program, sparse)
        if error is not None:
            yield Finding("cel-null", _warning(policy, rule, error))
