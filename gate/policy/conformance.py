"""Whether a document conforms to one of gate's JSON Schemas (`schemas/`): a quick yes or "ask jsonschema".

Every policy is checked against `policy.v1.schema.json` on every run; jsonschema (with referencing, attrs
and rpds) takes longer to import than the rest of a `gate check` of a wheel. This module reads the same
schema file and answers only "conforms" (True) or "not known to" (False): it implements the keywords those
schemas use, the way jsonschema's Draft 2020-12 validator does, and on anything else (a keyword, a `$ref`,
a value type or a format it does not know) it says False. A False is then asked of jsonschema
(`gate.policy.schema`), which reports every problem with its path and line as before: a document is
refused by the one validator it always was, with the same messages, and only a document that conforms
skips it. tests/policy/test_conformance.py holds the two to the same verdict over the policies, the
invalid-policy corpus and their mutations.

The formats the schemas name are checked here too (`FORMAT_CHECKS`, which jsonschema's checker is built
from): a duration, a regex RE2 takes, an expiry date, a package selector, and CEL syntax (the CEL parser,
cel-python, is loaded only for a document with a `rules` expression).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from gate.policy import patterns
from gate.policy.duration import parse_duration
from gate.policy.model import parse_expiry, parse_selector

SCHEMA_NAME = "policy.v1.schema.json"
# gate's package data, beside its modules (read as a file: importlib.resources would load zipfile and tempfile)
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in gate/schemas (also at the top-level `schemas/`)."""
    text = (SCHEMAS / name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def policy_schema() -> dict[str, Any]:
    return load_schema(SCHEMA_NAME)


def _strings(parse: Callable[[str], object]) -> Callable[[object], bool]:
    """A format check that parses a string with `parse` (its ValueError is the message); other types pass
    (as in JSON Schema, a format says nothing about them)."""

    def check(value: object) -> bool:
        if isinstance(value, str):
            parse(value)
        return True

    return check


def _cel(value: object) -> bool:
    if isinstance(value, str):
        # the CEL parser only for a document that has an expression (a custom rule is compiled to CEL anyway)
        from gate.policy.cel import CELParseError, check_syntax  # noqa: PLC0415

        try:
            check_syntax(value)
        except CELParseError as err:
            where = f"line {err.line}, column {err.column}" if err.line else "here"
            text = str(err.args[0]).rstrip() if err.args else ""
            raise ValueError(f"CEL syntax error at {where}:\n{text}") from err
    return True


# The formats gate's schemas name: each returns True or raises ValueError saying what is wrong (the message
# `gate.policy.schema` reports). jsonschema's FormatChecker is made of these same functions.
FORMAT_CHECKS: Mapping[str, Callable[[object], bool]] = {
    "duration": _strings(parse_duration),
    "regex": _strings(patterns.regex),
    "expiry": _strings(parse_expiry),
    "package-selector": _strings(parse_selector),
    "cel": _cel,
}

# Keywords that only annotate: they never make a document invalid.
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default",
                          "x-error"})


class _Unknown(Exception):  # noqa: N818 (not an error: "this check cannot tell", so jsonschema is asked)
    pass


def _equal(one: Any, other: Any) -> bool:
    """JSON equality as jsonschema compares `const` and `enum` (a bool is not a number)."""
    if isinstance(one, bool) or isinstance(other, bool):
        return type(one) is type(other) and one == other
    if isinstance(one, str) or isinstance(other, str):
        return isinstance(one, str) and isinstance(other, str) and one == other
    if one is None or other is None:
        return one is other
    if isinstance(one, int | float) and isinstance(other, int | float):
        return one == other
    raise _Unknown


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def _count(want: Any) -> int:
    """A schema's `minLength`, `maxItems`... (a non-negative integer, or this check cannot tell)."""
    if isinstance(want, int) and not isinstance(want, bool) and want >= 0:
        return want
    raise _Unknown


@cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


class _Validator:
    """One schema's keywords over JSON-like data (dict, list, str, int, bool, None), as Draft 2020-12."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def _ref(self, ref: str) -> Any:
        if not ref.startswith("#/$defs/") or "/" in ref[len("#/$defs/"):] or "~" in ref:
            raise _Unknown
        try:
            return self.root["$defs"][ref[len("#/$defs/"):]]
        except (KeyError, TypeError):
            raise _Unknown from None

    def valid(self, schema: Any, value: Any) -> bool:
        if schema is True or schema is False:
            return schema
        if not isinstance(schema, dict):
            raise _Unknown
        for key, want in schema.items():
            if key in _ANNOTATIONS or key in ("then", "else"):
                continue
            match key:
                case "type":
                    kinds = [want] if isinstance(want, str) else want
                    if not any(self._type(kind, value) for kind in kinds):
                        return False
                case "const":
                    if not _equal(value, want):
                        return False
                case "enum":
                    if not any(_equal(value, option) for option in want):
                        return False
                case "$ref":
                    if not self.valid(self._ref(want), value):
                        return False
                case "allOf":
                    if not all(self.valid(sub, value) for sub in want):
                        return False
                case "anyOf":
                    if not any([self.valid(sub, value) for sub in want]):  # every branch: an unknown one decides
                        return False
                case "oneOf":
                    if sum(self.valid(sub, value) for sub in want) != 1:
                        return False
                case "not":
                    if self.valid(want, value):
                        return False
                case "if":
                    branch = schema.get("then" if self.valid(want, value) else "else", True)
                    if not self.valid(branch, value):
                        return False
                case _ if isinstance(value, dict):
                    if not self._object(key, want, schema, value):
                        return False
                case _ if isinstance(value, list):
                    if not self._array(key, want, value):
                        return False
                case _ if isinstance(value, str):
                    if not self._string(key, want, value):
                        return False
                case _:
                    self._known(key)  # a keyword for another type: it does not apply to this value
        return True

    def _type(self, kind: str, value: Any) -> bool:
        if kind not in _TYPES or isinstance(value, float):  # (jsonschema takes 1.0 as an integer)
            raise _Unknown
        return _TYPES[kind](value)

    def _known(self, key: str) -> None:
        if key not in _OBJECT | _ARRAY | _STRING:
            raise _Unknown

    def _object(self, key: str, want: Any, schema: dict[str, Any], value: dict[Any, Any]) -> bool:
        if not all(isinstance(k, str) for k in value):  # YAML keys that are not strings: jsonschema decides
            raise _Unknown
        match key:
            case "properties":
                return all(self.valid(sub, value[name]) for name, sub in want.items() if name in value)
            case "additionalProperties":
                if "patternProperties" in schema:
                    raise _Unknown
                known = schema.get("properties", {})
                return all(self.valid(want, item) for name, item in value.items() if name not in known)
            case "required":
                return all(name in value for name in want)
            case "minProperties":
                return len(value) >= _count(want)
            case "maxProperties":
                return len(value) <= _count(want)
            case "propertyNames":
                return all(self.valid(want, name) for name in value)
        self._known(key)
        return True

    def _array(self, key: str, want: Any, value: list[Any]) -> bool:
        match key:
            case "items":
                return all(self.valid(want, item) for item in value)
            case "minItems":
                return len(value) >= _count(want)
            case "maxItems":
                return len(value) <= _count(want)
            case "uniqueItems":
                if not want:
                    return True
                if not all(isinstance(item, str) for item in value):
                    raise _Unknown
                return len(set(value)) == len(value)
        self._known(key)
        return True

    def _string(self, key: str, want: Any, value: str) -> bool:
        match key:
            case "minLength":
                return len(value) >= _count(want)
            case "maxLength":
                return len(value) <= _count(want)
            case "pattern":
                return _pattern(want).search(value) is not None
            case "format":
                check = FORMAT_CHECKS.get(want)
                if check is None:
                    raise _Unknown
                try:
                    return check(value)
                except ValueError:
                    return False
        self._known(key)
        return True


_OBJECT = frozenset({"properties", "additionalProperties", "required", "minProperties", "maxProperties",
                     "propertyNames"})
_ARRAY = frozenset({"items", "minItems", "maxItems", "uniqueItems"})
_STRING = frozenset({"minLength", "maxLength", "pattern", "format"})


def conforms(data: Any, schema: dict[str, Any] | None = None) -> bool:
    """True when `data` is valid under `schema` (default: the policy schema) as jsonschema's Draft 2020-12
    validator with `FORMAT_CHECKS` judges it; False when it is not, or when this check cannot tell."""
    root = policy_schema() if schema is None else schema
    try:
        return _Validator(root).valid(root, data)
    except (_Unknown, RecursionError):
        return False
