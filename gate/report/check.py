"""`gate check` reports: text, JSON, a summary table and SARIF."""

from __future__ import annotations

import json
from collections.abc import Sequence

from gate.decision import Decision, Verdict, overall
from gate.errors import Level
from gate.facts import AttestationFact
from gate.redact import redact

Located = tuple[Decision, str | None, int | None]  # a decision and where the file was named (file, line)


def _reason(decision: Decision) -> str:
    if decision.denying:
        return "; ".join(v.ref for v in decision.denying)
    if not decision.policies:
        return "no policy matches"
    waived = [v for v in decision.violations if v.waived]
    audit = [v for v in decision.violations if not v.enforced and not v.waived]
    parts = [f"waived {v.ref}" for v in waived] + [f"audit {v.ref}" for v in audit]
    return "; ".join(parts) or "ok"


def summary_table(decisions: Sequence[Decision], notes: Sequence[Sequence[str]]) -> str:
    """One row per file: verdict, package, version, upload time, verified evidence, and why (with the
    file's notes, one sequence per decision)."""
    header = ("VERDICT", "PACKAGE", "VERSION", "UPLOADED", "EVIDENCE", "REASON")
    rows = []
    for d, extra in zip(decisions, notes, strict=True):
        file = d.facts.file
        verified = sum(a.verified for a in d.facts.attestations)
        evidence = f"{verified}/{len(d.facts.attestations)} verified" if d.facts.attestations else "none"
        uploaded = file.uploaded.strftime("%Y-%m-%d") if file.uploaded else "unknown"
        reason = _reason(d)
        if extra:
            reason += " (" + "; ".join(extra) + ")"
        rows.append((d.verdict.value.upper(), file.name, file.version, uploaded, evidence, reason))
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def check_sarif(located: Sequence[Located], notes: Sequence[Sequence[str]] | None = None) -> str:
    """A result per violation (denying: error, waived or audit: note), located where the file was named;
    the file's `notes` (one sequence per decision: why a fact is unknown) end each of its messages."""
    from gate.report.sarif import SarifResult, SarifRule, sarif_text  # noqa: PLC0415 (only for --format sarif)

    rules: dict[str, SarifRule] = {}
    results = []
    for i, (decision, file, line) in enumerate(located):
        name = decision.facts.file.filename
        extra = f" ({'; '.join(notes[i])})" if notes is not None and notes[i] else ""
        for v in decision.violations:
            rule_id = v.ref
            rules.setdefault(rule_id, SarifRule(rule_id, v.message))
            level = Level.ERROR if v.denies else Level.NOTE
            tag = "" if v.denies else (f" (waived: {v.waived})" if v.waived else " (audit mode)")
            text = f"{name}: {v.message}{tag}{extra}"
            results.append(SarifResult(rule_id, level, text, file or name, line))
    return sarif_text("gate check", list(rules.values()), results)


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
        return f"not verified ({att.error}) [{redact(att.source)}]"
    parts = [att.predicateType or "message signature", f"identity {att.identity}", f"issuer {att.issuer}"]
    if att.publisher is not None:
        pub = att.publisher
        fields = [pub.repository, pub.workflow or pub.workflowFilepath, pub.email]
        shown = " ".join(f for f in fields if f)
        env = f" environment={pub.environment}" if pub.environment else ""
        parts.append(f"publisher {pub.kind} {shown}{env}")
    if att.targetChannel:
        parts.append(f"targetChannel {att.targetChannel}")
    if att.sourceUri or att.builderId:  # SLSA provenance the certificate confirmed (gate.verify.intoto)
        parts.append(f"source {att.sourceUri} {att.sourceRef} ({att.sourceDigest}), builder {att.builderId}")
    return "verified: " + ", ".join(parts)


def violation_lines(decision: Decision) -> list[str]:
    """One indented line per violation: DENY, WAIVED (with the waiver) or AUDIT, `policy/rule: message`."""
    lines = []
    for v in decision.violations:
        tag = "DENY " if v.denies else ("WAIVED" if v.waived else "AUDIT")
        extra = f" (waived: {v.waived})" if v.waived else ""
        lines.append(f"      {tag} {v.policy}/{v.rule}: {v.message}{extra}")
    return lines


def text_report(decisions: list[Decision]) -> str:
    lines = []
    for decision in decisions:
        file = decision.facts.file
        lines.append(f"{decision.verdict.value.upper():5} {file.filename}  sha256:{file.sha256}")
        if not decision.policies:
            lines.append("      no policy matches this file")
        lines += violation_lines(decision)
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
