"""CVSS base scores of OSV `severity[]` vectors, computed with the `cvss` package (RedHat), once per
distinct vector (a load sees the same few thousand vectors many times)."""

from __future__ import annotations

from collections.abc import Sequence

from cvss import CVSS2, CVSS3, CVSS4, CVSSError

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
