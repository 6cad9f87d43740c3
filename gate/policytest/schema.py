"""Validate `*.gate-test.yaml` documents against `schemas/gate-test.v1.schema.json`, every error with its line."""

from __future__ import annotations

from functools import cache

import jsonschema

from gate.errors import Issue
from gate.policy.conformance import load_schema
from gate.policy.load import RawPolicy
from gate.policy.schema import FORMATS, document_issues

SCHEMA_NAME = "gate-test.v1.schema.json"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(SCHEMA_NAME), format_checker=FORMATS)


def case_file_issues(doc: RawPolicy) -> list[Issue]:
    """Every schema violation of one test document, sorted by line."""
    return document_issues(doc, _validator())
