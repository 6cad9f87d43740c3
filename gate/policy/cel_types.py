"""The types of CEL values gate's rules see, and the declared types of the facts document.

The facts document (`gate.policy.activation`) is `file` (a FileFacts), `attestations` (a list of
AttestationFact, each with a `publisher` map and a `claims` map), `vulnerabilities` (a list of
Vulnerability, each with its `band`), `continuity` (a Continuity: the releases that set the provenance bar,
each with its `publishers`) and `now` (a timestamp). Its field
types are read from those msgspec Structs, so the static check follows the facts as they change.

Every type carries `size`, the most elements a value of it can hold (lists and maps; 0 otherwise): the
cost estimate multiplies a comprehension's body by its receiver's size. The lists in the facts are
bounded by MAX_ATTESTATIONS and MAX_CLAIMS, which evaluation enforces (`gate.policy.compile`).
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import msgspec

from gate.facts import (
    MAX_WORKFLOW_INPUTS,
    AttestationFact,
    Continuity,
    FileFacts,
    LineRelease,
    Publisher,
    Vulnerability,
)
from gate.verify.target import CLAIM_OIDS

# The most attestations, and claims per attestation, a rule is evaluated over; more is not judged.
MAX_ATTESTATIONS = 16
MAX_CLAIMS = 32
# The most OSV records (`vulnerabilities`), and aliases or fixed versions per record, a rule is evaluated over.
MAX_VULNERABILITIES = 128
MAX_RECORD_LIST = 16
# cel-python transpiles a parse tree recursively (gate.policy.cel): an expression a policy writes longer than
# this is refused before it is parsed.
MAX_LENGTH = 10_000
# The most evaluation steps a rule may take on the largest facts document (each step is one operator,
# call, literal or variable: 20 to 50 microseconds in cel-python, so about half a second at most), and
# all the rules of one policy together.
MAX_COST = 20_000
MAX_POLICY_COST = 100_000

@dataclass(frozen=True)
class RuleProblem:
    """Why a rule cannot be used: `code` is lint's finding code (cel-syntax, cel-type, cel-cost, regex)."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" at line {self.line}, column {self.column} of the expression" if self.line else ""
        return self.message + where


SCALARS = ("bool", "int", "uint", "double", "string", "bytes", "timestamp", "duration", "null")


@dataclass(frozen=True)
class Type:
    """A CEL type: a scalar kind, `list` (args: element), `map` (args: key, value), `object` (a facts
    record named `name`), `dyn` (anything) or `hasbool` (the Python bool cel-python's `has()` yields,
    which its `!`, `?:` and a second `has()` in `&&`/`||` reject). `nullable`: the fact may be null."""

    kind: str
    args: tuple[Type, ...] = ()
    name: str = ""
    size: int = 0
    nullable: bool = False

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list({self.args[0]})"
        if self.kind == "map":
            return f"map({self.args[0]}, {self.args[1]})"
        if self.kind == "object":
            return self.name
        return "bool" if self.kind == "hasbool" else self.kind

    @property
    def base(self) -> str:
        """The kind, with has()'s bool read as bool."""
        return "bool" if self.kind == "hasbool" else self.kind


BOOL = Type("bool")
HASBOOL = Type("hasbool")
INT = Type("int")
UINT = Type("uint")
DOUBLE = Type("double")
STRING = Type("string")
BYTES = Type("bytes")
TIMESTAMP = Type("timestamp")
DURATION = Type("duration")
NULL = Type("null")
DYN = Type("dyn")


def list_of(element: Type, size: int) -> Type:
    return Type("list", (element,), size=size)


def map_of(key: Type, value: Type, size: int) -> Type:
    return Type("map", (key, value), size=size)


def join(a: Type, b: Type) -> Type:
    """The type of a value that is either an `a` or a `b` (ternary branches, list elements)."""
    if a.kind == "null" or b.kind == "null":
        other = b if a.kind == "null" else a
        return replace(other, nullable=True) if other.kind != "null" else NULL
    if a.base == b.base and (a.base != "object" or a.name == b.name):
        args = tuple(join(x, y) for x, y in zip(a.args, b.args, strict=True))
        name = a.name if a.name == b.name else ""
        return Type(a.base, args, name, max(a.size, b.size), a.nullable or b.nullable)
    return Type("dyn", size=max(a.size, b.size))


def _from_python(annotation: Any) -> Type:
    """The CEL type of a facts Struct field, as `gate.policy.activation.to_activation` converts it."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        present = [a for a in typing.get_args(annotation) if a is not type(None)]
        [only] = present
        inner = _from_python(only)
        # a missing publisher is converted to one with an empty `kind`, a missing release to one with no
        # `publishers`: never null
        return inner if only in (Publisher, LineRelease) else replace(inner, nullable=True)
    if typing.get_origin(annotation) is tuple:  # a record's `aliases` and `fixed`, a release's `publishers`
        [element, _] = typing.get_args(annotation)
        return list_of(_from_python(element), MAX_RECORD_LIST)
    if typing.get_origin(annotation) is dict:  # `claims`: the Fulcio claims of the certificate, by name
        return Type("map", (STRING, STRING), name="claims", size=MAX_CLAIMS)
    if annotation is bool:
        return BOOL
    if annotation is int:
        return INT
    if annotation is float:
        return DOUBLE
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return STRING
    if annotation is dt.datetime:
        return TIMESTAMP
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return Type("object", name=OBJECT_NAMES[annotation])
    raise TypeError(f"no CEL type for {annotation!r}")


OBJECT_NAMES: dict[type, str] = {
    FileFacts: "file", AttestationFact: "attestation", Publisher: "publisher", Vulnerability: "vulnerability",
    Continuity: "continuity", LineRelease: "release",
}
# Fields `gate.policy.activation.to_activation` adds to a record's document beside its Struct's
_DERIVED_FIELDS: dict[str, dict[str, Type]] = {"vulnerability": {"band": STRING}}
# Maps other than `claims`: any key may be asked for (SLSA workflow inputs are the workflow's own names)
_MAP_FIELDS: dict[str, dict[str, Type]] = {
    "attestation": {"workflowInputs": map_of(STRING, STRING, MAX_WORKFLOW_INPUTS)},
}


@cache
def object_fields(name: str) -> dict[str, Type]:
    """The fields of a facts record (`file`, `attestation`, `publisher`, `vulnerability`, `continuity`,
    `release`) and their types."""
    struct = next(s for s, n in OBJECT_NAMES.items() if n == name)
    declared = {f.name: _from_python(f.type) for f in msgspec.structs.fields(struct)}
    return declared | _MAP_FIELDS.get(name, {}) | _DERIVED_FIELDS.get(name, {})


# The keys a `claims` map can hold (it holds those the certificate carries)
CLAIM_NAMES = frozenset(CLAIM_OIDS.values())

FILE = Type("object", name="file")
ATTESTATION = Type("object", name="attestation")
VULNERABILITY = Type("object", name="vulnerability")
# The variables of the facts document
VARIABLES: dict[str, Type] = {
    "file": FILE,
    "attestations": list_of(ATTESTATION, MAX_ATTESTATIONS),
    "vulnerabilities": list_of(VULNERABILITY, MAX_VULNERABILITIES),
    "continuity": Type("object", name="continuity"),
    "now": TIMESTAMP,
}


def comparable(a: Type, b: Type) -> bool:
    """Whether `==` may compare an `a` with a `b` (null compares with anything; numbers of different
    kinds do not compare in cel-python: `1 == 1.0` is an error)."""
    if {"dyn", "null"} & {a.base, b.base}:
        return True
    if a.base != b.base or (a.base == "object" and a.name != b.name):
        return False
    return all(comparable(x, y) for x, y in zip(a.args, b.args, strict=True))
