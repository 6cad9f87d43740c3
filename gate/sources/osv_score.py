"""CVSS base scores of OSV `severity[]` vectors, computed with the `cvss` package (RedHat), once per
distinct vector (a load sees the same few thousand vectors many times)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from cvss import CVSS2, CVSS3, CVSS4, CVSSError

from gate.facts import SEVERITY_BANDS, Vulnerability, severity_band
from gate.sources.osv_schema import Severity


def base_score(severity: Severity) -> float | None:
    """The CVSS base score of one `severity[]` entry; None for a type that carries no CVSS vector
    (`Ubuntu`, or one gate does not know); raises ValueError for a vector that does not parse."""
    try:
        match severity.type:
            case "CVSS_V4":
                return float(CVSS4(severity.score).base_score)
            case "CVSS_V3":
                return float(CVSS3(severity.score).scores()[0])
            case "CVSS_V2":
                return float(CVSS2(severity.score).scores()[0])
            case _:
                return None
    except (CVSSError, ValueError, KeyError, IndexError) as err:
        raise ValueError(f"{severity.score!r} is not a {severity.type} vector: {err}") from err


class VectorScores:
    """Base scores by (type, vector), and the highest score of a record's vectors."""

    def __init__(self) -> None:
        self._scores: dict[tuple[str, str], float | str | None] = {}  # str: why it does not parse

    def score(self, severity: Severity) -> float | str | None:
        key = (severity.type, severity.score)
        if key not in self._scores:
            try:
                self._scores[key] = base_score(severity)
            except ValueError as err:
                self._scores[key] = str(err)
        return self._scores[key]

    def highest(self, vectors: Sequence[tuple[str, Severity]], label: str, warnings: list[str]) -> float | None:
        """The highest base score of `vectors` ((path, entry) pairs of the record at `label`); a vector
        that does not parse is a warning and no score."""
        best: float | None = None
        for path, severity in vectors:
            found = self.score(severity)
            if isinstance(found, str):
                warnings.append(f"{label}: {path}.score: {found}; it gives no score")
            elif found is not None and (best is None or found > best):
                best = found
        return best


Grade = tuple[float | None, str | None]  # (CVSS base score, the database's label)
_RANK = {band: i for i, band in enumerate(("unknown", *SEVERITY_BANDS))}


def _rank(fact: Vulnerability) -> tuple[int, float]:
    """How severe a record is graded: by band first (a `CRITICAL` label outranks a low score), then score."""
    score = fact.severity if fact.severity is not None else -1.0
    return _RANK[severity_band(fact)], score


def known_grades(facts: Iterable[tuple[str, Vulnerability]]) -> dict[tuple[str, str], Vulnerability]:
    """For every (package, id or alias) that a record with a score or a label carries, its most severe such
    record: a record with neither (PyPA's `PYSEC-` copy of a GitHub advisory usually has none) is then graded
    as the records of the same package it names, or that name it, are (`graded`), not as `unknown`. Only the
    same package's records count: another project's advisory naming the same CVE grades nothing here."""
    grades: dict[tuple[str, str], Vulnerability] = {}
    for name, fact in facts:
        if fact.severity is None and fact.severityLabel is None:
            continue
        for key in (fact.id, *fact.aliases):
            known = grades.get((name, key))
            if known is None or _rank(fact) > _rank(known):
                grades[(name, key)] = fact
    return grades


def graded(name: str, fact: Vulnerability, grades: dict[tuple[str, str], Vulnerability]) -> Vulnerability:
    """`fact` (of package `name`), graded as the most severe record of that package sharing its id or an alias
    when it has no grade of its own; never graded below `unknown`'s reading unless a relative is graded."""
    if fact.severity is not None or fact.severityLabel is not None:
        return fact
    found = [grades[(name, key)] for key in (fact.id, *fact.aliases) if (name, key) in grades]
    if not found:
        return fact
    worst = max(found, key=_rank)
    return msgspec.structs.replace(fact, severity=worst.severity, severityLabel=worst.severityLabel)
