"""CVSS base scores of OSV `severity[]` vectors, computed with the `cvss` package (RedHat), once per
distinct vector (a load sees the same few thousand vectors many times)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from cvss import CVSS2, CVSS3, CVSS4, CVSSError

from gate.facts import Vulnerability
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


def known_grades(facts: Iterable[Vulnerability]) -> dict[str, Grade]:
    """For every id and alias that a record with a score or a label carries, the worst such grade: a record
    with neither (PyPA's `PYSEC-` copy of a GitHub advisory usually has none) is then graded as the records it
    names, or that name it, are (`graded`), not as `unknown`."""
    grades: dict[str, Grade] = {}
    for fact in facts:
        if fact.severity is None and fact.severityLabel is None:
            continue
        for key in (fact.id, *fact.aliases):
            known = grades.get(key)
            if known is None or _score(fact.severity) > _score(known[0]):
                grades[key] = (fact.severity, fact.severityLabel)
    return grades


def graded(fact: Vulnerability, grades: dict[str, Grade]) -> Vulnerability:
    """`fact`, graded by the worst record sharing its id or an alias when it has no grade of its own."""
    if fact.severity is not None or fact.severityLabel is not None:
        return fact
    found = [grades[key] for key in (fact.id, *fact.aliases) if key in grades]
    if not found:
        return fact
    score, label = max(found, key=lambda grade: _score(grade[0]))
    return msgspec.structs.replace(fact, severity=score, severityLabel=label)


def _score(value: float | None) -> float:
    return -1.0 if value is None else value
