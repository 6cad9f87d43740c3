"""Validate `*.gate-test.yaml` documents against `schemas/gate-test.v1.schema.json`, every error with its line.

Mirrors `gate.policy.schema` (same message rules, "did you mean" for unknown keys) for a second schema.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from gate.errors import Issue
from gate.policy.load import RawPolicy, format_path

SCHEMA_NAME = "gate-test.v1.schema.json"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("gate").joinpath("schemas", SCHEMA_NAME).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return jsonschema.Draft202012Validator(schema)


def _issues(error: ValidationError, doc: RawPolicy) -> list[Issue]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        out = []
        for key in error.instance:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed keys: {', '.join(allowed)}"
            where = (*path, str(key))
            out.append(Issue(format_path(where), f"unknown key {key!r}{hint}", doc.file, doc.line_of(where)))
        return out
    if "x-error" in schema:
        message = f"{schema['x-error']} (got {json.dumps(error.instance, default=str)[:80]})"
    else:
        message = error.message.replace("is a required property", "is required")
    return [Issue(format_path(path), message, doc.file, doc.line_of(path))]


def case_file_issues(doc: RawPolicy) -> list[Issue]:
    """Every schema violation of one test document, sorted by line."""
    issues: set[Issue] = set()
    for error in _validator().iter_errors(doc.data):
        issues.update(_issues(error, doc))
    return sorted(issues, key=lambda i: (i.line or 0, i.path, i.message))
