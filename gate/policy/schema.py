"""Validate raw policy documents against `schemas/policy.v1.schema.json`, collecting every error with its path
(with jsonschema: `gate.policy.conformance` lets a document that conforms skip it)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import jsonschema
from jsonschema.exceptions import ValidationError

from gate.errors import Issue
from gate.policy.conformance import FORMAT_CHECKS, policy_schema
from gate.policy.load import Path_, RawPolicy, format_path

FORMATS = jsonschema.FormatChecker(formats=())
for _name, _check in FORMAT_CHECKS.items():  # the same checks `gate.policy.conformance` makes
    FORMATS.checks(_name, raises=ValueError)(_check)


@cache
def policy_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(policy_schema(), format_checker=FORMATS)


def _message(error: ValidationError) -> str:
    """A human message: the schema's own `x-error` where it has one."""
    if isinstance(error.schema, dict) and "x-error" in error.schema:
        return f"{error.schema['x-error']} (got {json.dumps(error.instance, default=str)[:80]})"
    if error.validator == "format" and error.cause is not None:
        return str(error.cause)
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message


def leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Report an `if/then` branch's own errors rather than the `allOf` wrapper around it, and a
    value of the right shape but bad content (a `format` error) rather than "not valid under any"."""
    if error.validator == "allOf" and error.context:
        for sub in error.context:
            yield from leaves(sub)
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        formats = [sub for sub in error.context if sub.validator == "format"]
        if formats:
            yield from formats
            return
    yield error


@dataclass(frozen=True)
class Problem:
    """One schema violation: its issue, the path of the value with its keys as written (for `gate lint`
    to step past it), and its kind: "unknown-key", the `format` the value fails, or None (anything else)."""

    issue: Issue
    at: Path_
    kind: str | None


def _unknown_keys(error: ValidationError, doc: RawPolicy) -> Iterator[Problem]:
    """One problem per unknown key, at the key's own path and line, with a "did you mean" hint."""
    allowed = sorted(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    for key in error.instance if isinstance(error.instance, dict) else ():
        if key in allowed:
            continue
        path = (*error.absolute_path, str(key))
        shown = str(key) if len(str(key)) <= 80 else str(key)[:80] + "..."  # a key may be a megabyte long
        close = difflib.get_close_matches(shown, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed keys: {', '.join(allowed)}"
        where = format_path((*error.absolute_path, shown))
        named = repr(shown) if isinstance(key, str) else repr(key)
        issue = Issue(where, f"unknown key {named}{hint}", doc.file, doc.line_of(path))
        yield Problem(issue, (*error.absolute_path, key), "unknown-key")


def _problems(error: ValidationError, doc: RawPolicy) -> Iterator[Problem]:
    for leaf in leaves(error):
        if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
            yield from _unknown_keys(leaf, doc)
            continue
        path = tuple(leaf.absolute_path)
        kind = str(leaf.validator_value) if leaf.validator == "format" else None
        yield Problem(Issue(format_path(path), _message(leaf), doc.file, doc.line_of(path)), path, kind)


def document_problems(doc: RawPolicy, validator: jsonschema.Draft202012Validator) -> list[Problem]:
    """Every violation of `validator`'s schema in one YAML document, one per issue, sorted by line."""
    problems: dict[Issue, Problem] = {}
    for error in validator.iter_errors(doc.data):
        for problem in _problems(error, doc):
            problems.setdefault(problem.issue, problem)
    return sorted(problems.values(), key=lambda p: (p.issue.line or 0, p.issue.path, p.issue.message))


def document_issues(doc: RawPolicy, validator: jsonschema.Draft202012Validator) -> list[Issue]:
    """Every violation of `validator`'s schema in one YAML document, each with its path and line."""
    return [problem.issue for problem in document_problems(doc, validator)]


def schema_problems(doc: RawPolicy) -> list[Problem]:
    """Every policy-schema violation of one document, sorted by line."""
    return document_problems(doc, policy_validator())


def schema_issues(doc: RawPolicy) -> list[Issue]:
    """Every policy-schema violation of one document, sorted by line."""
    return document_issues(doc, policy_validator())
