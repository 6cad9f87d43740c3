"""Why each file of a project is allowed or denied, and what would change it (`gate explain`, the proxy's
`/-/explain/<project>`): every file with its verdict, the rules it violates, its evidence, when its decision
changes (an age that is reached, a waiver that expires), and the newest version the policies allow.

Built from the judgements the front ends already make (`gate.gather` facts, `Evaluator.judge`), so an
explanation says exactly what the proxy serves and `gate check` decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from gate.decision import Decision, Verdict
from gate.evaluate import Judgement
from gate.facts import Facts, describe_vulnerability, iso_z
from gate.report.check import describe_attestation, violation_lines

MAX_STEPS = 16  # moments at which a decision may change that are looked at for the next change of verdict

# (facts, moment) -> the judgement at that moment: `Evaluator.judge`
Rejudge = Callable[[Facts, dt.datetime], Judgement]


@dataclass(frozen=True)
class FileExplanation:
    """One file's decision, and when its verdict changes (None: not for as long as the facts stay the same)."""

    decision: Decision
    flips: dt.datetime | None = None

    @property
    def allowed_from(self) -> dt.datetime | None:
        """When a denied file becomes allowed (an age reached)."""
        return self.flips if self.decision.verdict is Verdict.DENY else None

    @property
    def allowed_until(self) -> dt.datetime | None:
        """When an allowed file stops being allowed (a waiver ends while its rule is still violated)."""
        return self.flips if self.decision.verdict is Verdict.ALLOW else None

    def to_json(self) -> dict[str, Any]:
        decision, file = self.decision, self.decision.facts.file
        out: dict[str, Any] = {
            "filename": file.filename,
            "version": file.version,
            "verdict": decision.verdict.value,
            "violations": [v.to_json() for v in decision.violations],
            "policies": list(decision.policies),
            "uploaded": None if file.uploaded is None else iso_z(file.uploaded),
            "yanked": file.yanked,
            "evidence": [describe_attestation(a) for a in decision.facts.attestations],
            "vulnerabilities": [describe_vulnerability(v) for v in decision.facts.vulnerabilities],
            "allowedFrom": None if self.allowed_from is None else iso_z(self.allowed_from),
            "allowedUntil": None if self.allowed_until is None else iso_z(self.allowed_until),
        }
        return out


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or more digits than int() converts (a query string)
        return None


@dataclass(frozen=True)
class Explanation:
    """A project's files as the policies judge them at `now`; `version` narrows `files` to one release."""

    ecosystem: str
    project: str
    index: str
    now: dt.datetime
    files: tuple[FileExplanation, ...]
    newest_allowed: str | None
    version: str | None = None

    @property
    def verdict(self) -> Verdict:
        """Allow when any file shown may be installed."""
        return Verdict.ALLOW if any(f.decision.verdict is Verdict.ALLOW for f in self.files) else Verdict.DENY

    def to_json(self) -> dict[str, Any]:
        return {
            "ecosystem": self.ecosystem,
            "project": self.project,
            "index": self.index,
            "now": iso_z(self.now),
            "version": self.version,
            "verdict": self.verdict.value,
            "newestAllowed": self.newest_allowed,
            "files": [f.to_json() for f in self.files],
        }


def next_flip(judgement: Judgement, rejudge: Rejudge) -> dt.datetime | None:
    """When the verdict of `judgement` changes, judging the same facts again at each moment its decision may
    change (None: not within MAX_STEPS such moments, or never)."""
    verdict, moment, facts = judgement.decision.verdict, judgement.valid_until, judgement.decision.facts
    for _ in range(MAX_STEPS):
        if moment is None:
            return None
        later = rejudge(facts, moment)
        if later.decision.verdict is not verdict:
            return moment
        if later.valid_until is not None and later.valid_until <= moment:  # a rule that reads `now`: no end
            return None
        moment = later.valid_until
    return None


def explain(
    ecosystem: str, project: str, index: str, judged: Sequence[Judgement], *, now: dt.datetime, rejudge: Rejudge,
    version: str | None = None,
) -> Explanation:
    """The explanation of a project's judged files (in page order); `version` selects one release's files
    (by PEP 440 equality, so `1.0` names `1.0.0` too), while `newest_allowed` looks at them all. `rejudge`
    finds when each verdict changes (`next_flip`)."""
    allowed = [
        (parsed, j.decision.facts.file.version) for j in judged
        if j.decision.verdict is Verdict.ALLOW and (parsed := _version(j.decision.facts.file.version)) is not None
    ]
    newest = max(allowed)[1] if allowed else None
    if version is not None:  # before the verdicts' changes are looked for: one release costs what it shows
        wanted = _version(version)
        judged = [
            j for j in judged
            if (wanted is not None and _version(j.decision.facts.file.version) == wanted)
            or j.decision.facts.file.version == version
        ]
    files = [FileExplanation(j.decision, next_flip(j, rejudge)) for j in judged]
    return Explanation(ecosystem, project, index, now, tuple(files), newest, version)


def explanation_text(explanation: Explanation) -> str:
    """The explanation for a terminal: one block per file, then the newest allowed version."""
    what = explanation.project + (f"=={explanation.version}" if explanation.version else "")
    lines = [f"{what} on {explanation.index} as of {iso_z(explanation.now)}"]
    if not explanation.files:
        lines.append("  no files" + (f" of version {explanation.version}" if explanation.version else ""))
    for item in explanation.files:
        decision, file = item.decision, item.decision.facts.file
        lines.append(f"{decision.verdict.value.upper():5} {file.filename}")
        lines += violation_lines(decision)
        uploaded = iso_z(file.uploaded) if file.uploaded else "unknown"
        lines.append(f"      uploaded: {uploaded}" + ("  (yanked)" if file.yanked else ""))
        for att in decision.facts.attestations:
            lines.append(f"      evidence: {describe_attestation(att)}")
        for record in decision.facts.vulnerabilities:
            lines.append(f"      known: {describe_vulnerability(record)}")
        if item.allowed_from is not None:
            lines.append(f"      allowed from {iso_z(item.allowed_from)}")
        if item.allowed_until is not None:
            lines.append(f"      allowed until {iso_z(item.allowed_until)} (a waiver ends)")
    newest = explanation.newest_allowed
    lines.append(f"newest allowed version: {newest}" if newest else "no version of this project is allowed")
    return "\n".join(lines)
