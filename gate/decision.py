"""Decisions about files, and the reports and exit codes made from them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import IntEnum, StrEnum
from typing import Any

import msgspec

from gate.facts import AttestationFact, Facts


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
        return {
            "file": self.facts.file.filename,
            "sha256": self.facts.file.sha256,
            "verdict": self.verdict.value,
            "violations": [v.to_json() for v in self.violations if v.denies],
            "audit": [v.to_json() for v in self.violations if not v.denies],
            "policies": list(self.policies),
            "facts": self.facts.file.to_json(),
            "attestations": [a.to_json() for a in self.facts.attestations],
        }


def overall(decisions: list[Decision]) -> Verdict:
    return Verdict.DENY if any(d.verdict is Verdict.DENY for d in decisions) else Verdict.ALLOW


def exit_code(decisions: list[Decision]) -> ExitCode:
    return ExitCode.DENIED if overall(decisions) is Verdict.DENY else ExitCode.ALLOWED


def json_report(decisions: list[Decision], notes: Sequence[Sequence[str]] | None = None) -> str:
    """The JSON report; `notes` (one sequence per decision) say what could not be established, and why."""
    results = [d.to_json() for d in decisions]
    if notes is not None:
        for result, extra in zip(results, notes, strict=True):
            result["notes"] = list(extra)
    return json.dumps({"verdict": overall(decisions).value, "results": results}, indent=2)


def describe_attestation(att: AttestationFact) -> str:
    """One line on what a piece of evidence showed, or why it showed nothing."""
    if not att.verified:
        return f"not verified ({att.error}) [{att.source}]"
    parts = [att.predicateType or "message signature", f"identity {att.identity}", f"issuer {att.issuer}"]
    if att.publisher is not None:
        pub = att.publisher
        fields = [pub.repository, pub.workflow or pub.workflowFilepath, pub.email]
        shown = " ".join(f for f in fields if f)
        env = f" environment={pub.environment}" if pub.environment else ""
        parts.append(f"publisher {pub.kind} {shown}{env}")
    if att.targetChannel:
        parts.append(f"targetChannel {att.targetChannel}")
    return "verified: " + ", ".join(parts)


def text_report(decisions: list[Decision]) -> str:
    lines = []
    for decision in decisions:
        file = decision.facts.file
        lines.append(f"{decision.verdict.value.upper():5} {file.filename}  sha256:{file.sha256}")
        if not decision.policies:
            lines.append("      no policy matches this file")
        for v in decision.violations:
            tag = "DENY " if v.denies else ("WAIVED" if v.waived else "AUDIT")
            extra = f" (waived: {v.waived})" if v.waived else ""
            lines.append(f"      {tag} {v.policy}/{v.rule}: {v.message}{extra}")
        uploaded = file.uploaded.isoformat() if file.uploaded else "unknown"
        lines.append(f"      uploaded: {uploaded}")
        if not decision.facts.attestations:
            lines.append("      evidence: none")
        for att in decision.facts.attestations:
            lines.append(f"      evidence: {describe_attestation(att)}")
    verdict = overall(decisions)
    denied = sum(d.verdict is Verdict.DENY for d in decisions)
    lines.append(f"{verdict.value}: {len(decisions) - denied} allowed, {denied} denied")
    return "\n".join(lines)
