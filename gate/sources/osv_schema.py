"""The OSV record format (https://ossf.github.io/osv-schema/, version 1.7) as msgspec Structs.

Every field the schema defines is typed as the schema types it, so a record that breaks the schema is
reported with the path of the field (`$.affected[0].ranges[0].events`), never half read. Free-form
objects the schema leaves to each database (`database_specific`, `ecosystem_specific`) are kept as raw
JSON: gate reads only `database_specific.severity` (GitHub's label) and the malicious-packages marker.
Enumerations that grow with the schema (reference and credit types) are plain strings, so newer data
still loads; the range and event shapes, which decide what a record applies to, are checked exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")


class Object(msgspec.Struct, frozen=True, gc=False):
    """A JSON object whose keys belong to the database (`ecosystem_specific`, `database_specific`): checked
    to be an object, its contents skipped."""


class DatabaseSpecific(msgspec.Struct, frozen=True, gc=False, rename={"origins": "malicious-packages-origins"}):
    """The record's `database_specific` with the two keys gate reads: GitHub's `severity` label and the
    OpenSSF malicious-packages `malicious-packages-origins` list (present only in malware reports). Their
    values are the database's own (outside the schema), so any JSON value is accepted here."""

    severity: Any = None
    origins: Any = None

    def label(self) -> str | None:
        """The severity label, when it is a non-empty string."""
        return self.severity if isinstance(self.severity, str) and self.severity else None


class Severity(msgspec.Struct, frozen=True, gc=False):
    """`severity[]`: a scoring method and its score (a CVSS vector for the CVSS types)."""

    type: str  # CVSS_V2 | CVSS_V3 | CVSS_V4 | Ubuntu (others are ignored: they carry no score gate computes)
    score: str


class Package(msgspec.Struct, frozen=True, gc=False):
    """`affected[].package`: the package in its ecosystem's own naming (`name` as the record writes it)."""

    ecosystem: str
    name: str
    purl: str | None = None


class Event(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """`affected[].ranges[].events[]`: exactly one of the four keys (checked by `Range.problems`)."""

    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None

    def kinds(self) -> list[tuple[str, str]]:
        """The (key, version) pairs this event sets: one in a valid record."""
        pairs = (
            ("introduced", self.introduced),
            ("fixed", self.fixed),
            ("last_affected", self.last_affected),
            ("limit", self.limit),
        )
        return [(key, value) for key, value in pairs if value is not None]


class Range(msgspec.Struct, frozen=True, gc=False):
    """`affected[].ranges[]`: a timeline of events under the ordering its `type` names."""

    type: str
    events: tuple[Event, ...]
    repo: str | None = None
    database_specific: Object | None = None

    def problems(self, at: str) -> list[str]:
        """What the schema forbids here, each as `path: why`."""
        found: list[str] = []
        if self.type not in RANGE_TYPES:
            found.append(f"{at}.type: {self.type!r} is not one of {', '.join(RANGE_TYPES)}")
        if self.type == "GIT" and self.repo is None:
            found.append(f"{at}.repo: required for a GIT range")
        if not self.events:
            found.append(f"{at}.events: empty (at least one `introduced` event is required)")
        seen: set[str] = set()
        for i, event in enumerate(self.events):
            kinds = event.kinds()
            if len(kinds) != 1:
                keys = ", ".join(key for key, _ in kinds) or "none"
                found.append(f"{at}.events[{i}]: exactly one of introduced, fixed, last_affected, limit (has {keys})")
            seen.update(key for key, _ in kinds)
        if self.events and "introduced" not in seen:
            found.append(f"{at}.events: no `introduced` event")
        if "fixed" in seen and "last_affected" in seen:
            found.append(f"{at}.events: both `fixed` and `last_affected` (the schema allows one or the other)")
        return found


class Affected(msgspec.Struct, frozen=True, gc=False):
    """`affected[]`: one package, the versions it lists and the ranges it describes."""

    package: Package | None = None  # optional in the schema (a GIT-only entry); gate indexes only packages
    severity: tuple[Severity, ...] | None = None
    ranges: tuple[Range, ...] | None = None
    versions: tuple[str, ...] | None = None
    ecosystem_specific: Object | None = None
    database_specific: Object | None = None


class Reference(msgspec.Struct, frozen=True, gc=False):
    type: str
    url: str


class Credit(msgspec.Struct, frozen=True, gc=False):
    name: str
    contact: tuple[str, ...] | None = None
    type: str | None = None


class Related(msgspec.Struct, frozen=True, gc=False):
    """`related[]` in its object form (schema 1.7): a typed link to another id."""

    type: str
    id: str


class Record(msgspec.Struct, frozen=True, gc=False):
    """One OSV record. `id` and `modified` are required; everything else is optional (null allowed where
    the schema allows it)."""

    id: str
    modified: dt.datetime
    schema_version: str | None = None
    published: dt.datetime | None = None
    withdrawn: dt.datetime | None = None
    aliases: tuple[str, ...] | None = None
    upstream: tuple[str, ...] | None = None
    related: tuple[str | Related, ...] | None = None
    summary: str | None = None
    details: str | None = None
    severity: tuple[Severity, ...] | None = None
    affected: tuple[Affected, ...] | None = None
    references: tuple[Reference, ...] | None = None
    credits: tuple[Credit, ...] | None = None
    database_specific: DatabaseSpecific | None = None

    def problems(self) -> list[str]:
        """What the schema forbids beyond types, each as `path: why` (`$` is the record)."""
        found: list[str] = []
        if not self.id:
            found.append("$.id: empty")
        for i, affected in enumerate(self.affected or ()):
            for j, rng in enumerate(affected.ranges or ()):
                found.extend(rng.problems(f"$.affected[{i}].ranges[{j}]"))
        return found


_RECORD = msgspec.json.Decoder(Record)


def decode(data: bytes) -> Record:
    """`data` as one OSV record; raises msgspec.DecodeError (its message names the field's path) when
    it is not JSON or breaks the schema's types."""
    return _RECORD.decode(data)
