"""One error base for everything gate reports to a user; caught once in `cli.main`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class GateError(Exception):
    """Base of every error gate raises on purpose; `diagnostics()` tells the user what to do."""

    def diagnostics(self) -> str:
        return str(self)


class Level(StrEnum):
    """How much a reported problem matters; the values are SARIF's result levels (GitHub says `notice`)."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"  # reported, not a problem: `gate check`'s waived and audit-mode violations


@dataclass(frozen=True)
class Issue:
    """One problem in a policy file: where it is and what is wrong."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    level: Level = Level.ERROR
    code: str | None = field(default=None, compare=False)  # the `gate lint` code, where the finder knows it

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        at = f"{self.path}: " if self.path else ""
        return f"{where}{at}{self.message}"


@dataclass(frozen=True)
class Finding:
    """An issue with its `gate lint` code (the SARIF rule id): what building a policy and every lint check
    report; loading keeps only the issue."""

    code: str
    issue: Issue

    @property
    def level(self) -> Level:
        return self.issue.level

    @property
    def is_error(self) -> bool:
        return self.issue.level is Level.ERROR


class PolicyError(GateError):
    """A policy could not be loaded: carries every problem found, each with its path."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__(f"{len(issues)} error(s) in policy")

    def diagnostics(self) -> str:
        lines = [f"error: {issue}" for issue in self.issues]
        lines.append(f"{len(self.issues)} error(s); the policy was not loaded.")
        return "\n".join(lines)


class UsageError(GateError):
    """The command line asked for something that cannot be done (a missing file, a bad time)."""
