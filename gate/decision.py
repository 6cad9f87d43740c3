"""Decisions about files, their verdicts and the exit codes made from them (reports: `gate.report`)."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any

import msgspec

from gate.facts import NO_HISTORY, Facts, vulnerability_json


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


class ExitCode(IntEnum):
    ALLOWED = 0
    DENIED = 1
    USAGE = 2
    INTERNAL = 3


class Violation(msgspec.Struct, frozen=True, gc=False):  # msgspec, like the facts (see gate.facts)
    """A rule a file failed. `enforced` is false in audit mode; `waived` names the exception's reason."""

    policy: str
    rule: str
    message: str
    enforced: bool = True
    waived: str | None = None

    @property
    def ref(self) -> str:
        """`policy/rule`: how reports and `gate test` name the rule a violation is of."""
        return f"{self.policy}/{self.rule}"

    @property
    def denies(self) -> bool:
        return self.enforced and self.waived is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy, "rule": self.rule, "message": self.message}
        if not self.enforced:
            out["audit"] = True
        if self.waived is not None:
            out["waived"] = self.waived
        return out


class Decision(msgspec.Struct, frozen=True, gc=False):
    facts: Facts
    violations: tuple[Violation, ...]
    policies: tuple[str, ...]  # the policies whose `match` selected this file

    @property
    def verdict(self) -> Verdict:
        return Verdict.DENY if any(v.denies for v in self.violations) else Verdict.ALLOW

    @property
    def denying(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.denies)

    def to_json(self) -> dict[str, Any]:
        out = {
            "file": self.facts.file.filename,
            "sha256": self.facts.file.sha256,
            "verdict": self.verdict.value,
            "violations": [v.to_json() for v in self.violations if v.denies],
            "audit": [v.to_json() for v in self.violations if not v.denies],
            "policies": list(self.policies),
            "facts": self.facts.file.to_json(),
            "attestations": [a.to_json() for a in self.facts.attestations],
            "vulnerabilities": [vulnerability_json(v) for v in self.facts.vulnerabilities],
        }
        if self.facts.continuity is not NO_HISTORY:  # gathered: a policy reads it (spec.continuity)
            out["continuity"] = msgspec.to_builtins(self.facts.continuity)
        return out


def overall(decisions: list[Decision]) -> Verdict:
    return Verdict.DENY if any(d.verdict is Verdict.DENY for d in decisions) else Verdict.ALLOW


def exit_code(decisions: list[Decision]) -> ExitCode:
    return ExitCode.DENIED if overall(decisions) is Verdict.DENY else ExitCode.ALLOWED
