"""The CEL input document of a file's facts, in cel-python's types: what a rule that runs as CEL reads.

Apart from `gate.facts` so that a check whose every rule has its native form (`gate.policy.native`) never
loads cel-python (`gate.evaluate` imports this module when a rule first runs as CEL).
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

from celpy import celtypes
from msgspec.structs import asdict

from gate.facts import (
    NO_HISTORY,
    AttestationFact,
    Continuity,
    Facts,
    LineRelease,
    Publisher,
    Vulnerability,
    severity_band,
    visible_attestations,
)


def cel_timestamp(value: dt.datetime) -> celtypes.TimestampType:
    """A timezone-aware datetime as a CEL timestamp."""
    return celtypes.TimestampType(value.astimezone(dt.UTC))


def _cel(value: Any) -> Any:
    """Convert plain Python data (fields as `asdict` gives them) to CEL values; datetimes become timestamps."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, Enum):
        return celtypes.StringType(value.value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, dt.datetime):
        return cel_timestamp(value)
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): _cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([_cel(v) for v in value])
    raise TypeError(f"cannot convert {type(value).__name__} to CEL")


_NO_PUBLISHER = asdict(Publisher(kind=""))


def _attestation_document(att: AttestationFact) -> dict[str, Any]:
    """Every field present, so rules never fail on a missing key; no publisher is an empty `kind`."""
    doc = asdict(att)
    doc["publisher"] = _NO_PUBLISHER if att.publisher is None else asdict(att.publisher)
    return doc


def _vulnerability_document(vulnerability: Vulnerability) -> dict[str, Any]:
    """Every field of the record, and its `band` (`severity_band`), which rules compare without the null
    and number pitfalls of `severity` (a score may be null)."""
    doc = asdict(vulnerability)
    doc["band"] = severity_band(vulnerability)
    return doc


def _release_document(release: LineRelease | None) -> dict[str, Any]:
    """A release as rules read it; no release is one with no publishers (never null: cel-python's compiled
    programs fail on a field of null even in a branch not taken)."""
    if release is None:
        return {"version": "", "uploaded": None, "publishers": []}
    doc = asdict(release)
    doc["publishers"] = [asdict(p) for p in release.publishers]
    return doc


def continuity_document(continuity: Continuity) -> dict[str, Any]:
    """`continuity` as plain data: every field present (a line without a bar has no `publishers`)."""
    doc = asdict(continuity)
    for line in ("minor", "major", "project", "release"):
        doc[line] = _release_document(getattr(continuity, line))
    return doc


_NO_HISTORY_CEL = _cel(continuity_document(NO_HISTORY))  # most files' (read only: rules never change values)


def to_activation(facts: Facts, now: dt.datetime) -> dict[str, Any]:
    """The CEL input document: `file`, `attestations` (verified evidence only), `vulnerabilities` (the OSV
    records that apply, each with its `band`), `continuity` (the release history's bar) and `now`."""
    return {
        "file": _cel(asdict(facts.file)),
        "attestations": _cel([_attestation_document(a) for a in visible_attestations(facts.attestations)]),
        "vulnerabilities": _cel([_vulnerability_document(v) for v in facts.vulnerabilities]),
        "continuity": (
            _NO_HISTORY_CEL if facts.continuity is NO_HISTORY else _cel(continuity_document(facts.continuity))
        ),
        "now": cel_timestamp(now),
    }
