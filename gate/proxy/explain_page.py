"""`GET /-/explain/<project>` rendered for a browser: every file of a project with its verdict, the rules it
violates, its evidence, when its verdict changes, and the newest allowed version (`gate.explain`). Every
value from upstream, evidence, policies or the caller is escaped: the page holds no script and loads
nothing."""

from __future__ import annotations

from markupsafe import Markup

from gate.decision import Verdict
from gate.explain import Explanation, FileExplanation
from gate.facts import iso_z
from gate.report.check import describe_attestation

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35em .6em; border-bottom: 1px solid #ddd; }
.allow { color: #116611; font-weight: bold; } .deny { color: #aa1111; font-weight: bold; }
code, .small { font-size: .9em; } ul { margin: 0; padding-left: 1.2em; }
"""


def _file_row(item: FileExplanation) -> Markup:
    decision, file = item.decision, item.decision.facts.file
    verdict = decision.verdict.value
    rules = Markup("").join(
        Markup("<li><code>{}</code>: {}{}</li>").format(
            v.ref, v.message, Markup(" <em>(waived: {})</em>").format(v.waived) if v.waived else ""
        )
        for v in decision.violations
    )
    evidence = Markup("").join(
        Markup("<li>{}</li>").format(describe_attestation(a)) for a in decision.facts.attestations
    )
    when = ""
    if item.allowed_from is not None:
        when = f"allowed from {iso_z(item.allowed_from)}"
    elif item.allowed_until is not None:
        when = f"allowed until {iso_z(item.allowed_until)}"
    uploaded = iso_z(file.uploaded) if file.uploaded else "unknown"
    return Markup(
        '<tr><td><code>{}</code></td><td>{}</td><td class="{}">{}</td><td><ul>{}</ul></td>'
        '<td class="small">uploaded {}{}<ul>{}</ul></td><td>{}</td></tr>'
    ).format(
        file.filename, file.version, verdict, verdict.upper(), rules, uploaded,
        " (yanked)" if file.yanked else "", evidence, when,
    )


def render_explanation(explanation: Explanation) -> bytes:
    """The explanation as one self-contained HTML page."""
    newest = explanation.newest_allowed
    summary = (
        Markup("Newest allowed version: <strong>{}</strong>").format(newest) if newest
        else Markup("<strong>No version of this project is allowed.</strong>")
    )
    allowed = sum(f.decision.verdict is Verdict.ALLOW for f in explanation.files)
    rows = Markup("").join(_file_row(f) for f in explanation.files)
    page = Markup(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>gate: {project}</title>"
        "<style>{style}</style></head><body>"
        "<h1>{project}</h1><p>{summary}</p>"
        "<p class=\"small\">{allowed} of {count} files allowed on <code>{index}</code> as of {now}. "
        "A denied file names each rule it violates; ask your security team for an exception, or pick an "
        "allowed version.</p>"
        "<table><thead><tr><th>file</th><th>version</th><th>verdict</th><th>rules</th><th>facts and evidence</th>"
        "<th>changes</th></tr></thead><tbody>{rows}</tbody></table></body></html>\n"
    ).format(
        project=explanation.project, style=Markup(STYLE), summary=summary, allowed=allowed,
        count=len(explanation.files), index=explanation.index, now=iso_z(explanation.now), rows=rows,
    )
    return str(page).encode("utf-8")

