"""`GET /-/explain/<project>` for a browser: the explanation (`gate.explain`) as the values its template shows;
`gate.proxy.html` renders it escaped, with no script and nothing loaded."""

from __future__ import annotations

from typing import Any

from gate.decision import Verdict
from gate.explain import Explanation, FileExplanation
from gate.facts import iso_z
from gate.proxy.html import render
from gate.report.check import describe_attestation


def _file(item: FileExplanation) -> dict[str, Any]:
    decision, file = item.decision, item.decision.facts.file
    changes = ""
    if item.allowed_from is not None:
        changes = f"allowed from {iso_z(item.allowed_from)}"
    elif item.allowed_until is not None:
        changes = f"allowed until {iso_z(item.allowed_until)}"
    return {
        "filename": file.filename, "version": file.version, "verdict": decision.verdict.value,
        "rules": [{"ref": v.ref, "message": v.message, "waived": v.waived, "audit": not v.enforced}
                  for v in decision.violations],
        "uploaded": iso_z(file.uploaded) if file.uploaded else "unknown", "yanked": file.yanked,
        "evidence": [describe_attestation(a) for a in decision.facts.attestations], "changes": changes,
    }


def explanation_html(explanation: Explanation) -> bytes:
    """The explanation as one self-contained HTML page (`gate.proxy.html.html_response` serves it)."""
    return render(
        "explain.html", project=explanation.project, version=explanation.version,
        newest=explanation.newest_allowed, index=explanation.index, now=iso_z(explanation.now),
        allowed=sum(f.decision.verdict is Verdict.ALLOW for f in explanation.files),
        files=[_file(f) for f in explanation.files],
    )
