"""Ecosystem-neutral decisions for the proxy: judge fail-closed, count, audit, and refuse with reasons.
(Denials gate makes itself, `gate_denial` and `unjudgeable`, are gate.evaluate's: `gate check` shares them.)"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any

from flask import Response, request

from gate.decision import Decision, Verdict
from gate.evaluate import Judgement, gate_denial
from gate.facts import Facts
from gate.proxy.audit import audit_record
from gate.proxy.state import Gate
from gate.sources.failure import Failure, UpstreamError

log = logging.getLogger(__name__)


def judge(state: Gate, facts: Facts, now: dt.datetime, recheck: dt.datetime | None = None) -> Judgement:
    """The policies' judgement, holding no longer than `recheck` (when the evidence in `facts` may change);
    any error while deciding is a denial that holds only for this moment."""
    try:
        judgement = state.evaluator.judge(facts, now)
    except Exception as err:  # fail closed: whatever went wrong, the file is not admitted
        log.exception("error while deciding %s", facts.file.filename)
        return Judgement(gate_denial(facts, "gate.error", f"gate could not decide: {err}"), now)
    if recheck is not None and (judgement.valid_until is None or recheck < judgement.valid_until):
        return judgement._replace(valid_until=recheck)
    return judgement


def visible(state: Gate, decision: Decision) -> bool:
    """Whether the file is listed and served: allowed, or any verdict under the (unsafe) audit-only mode."""
    return not decision.violations or decision.verdict is Verdict.ALLOW or state.settings.audit_only


def audit_decisions(
    state: Gate, decisions: Iterable[Decision], *, event: str, client: str | None, everything: bool = False,
    shared: int = 0,
) -> None:
    """Count decisions and audit them: every download; on pages, every file some rule flagged
    (`everything=True` logs allowed files too). `shared`: how many more files were allowed without any
    violation by a judgement they share with another file (no decision of their own: counted, not logged)."""
    now = state.now()
    records = []
    verdicts: Counter[str] = Counter()
    rules: Counter[tuple[str, str]] = Counter()
    allowed = shared  # files without any violation: allowed, and not logged on a page (most files)
    for decision in decisions:
        if not decision.violations and not everything:
            allowed += 1
            continue
        verdicts[decision.verdict.value] += 1
        rules.update((v.policy, v.rule) for v in decision.violations)
        served = visible(state, decision)
        records.append(audit_record(decision, event=event, client=client, served=served, now=now))
    if allowed:
        verdicts[Verdict.ALLOW.value] += allowed
    for verdict, count in verdicts.items():
        state.metrics.inc("gate_decisions_total", count, verdict=verdict, event=event)
    for (policy, rule), count in rules.items():
        state.metrics.inc("gate_rule_violations_total", count, policy=policy, rule=rule)
    state.audit.write(records)


def refusal_text(decision: Decision, explain_url: str | None = None) -> str:
    """What a person reading an installer's error needs: which file, which rules, and why; where the whole
    project is explained (`explain_url`: each file's verdict and the newest allowed version)."""
    file = decision.facts.file
    version = f" {file.version}" if file.version else ""
    lines = [f"gate: {file.filename} ({file.name}{version}) is denied by policy."]
    for violation in decision.denying:
        lines.append(f"  - {violation.policy}/{violation.rule}: {violation.message}")
    if file.sha256:
        lines.append(f"  sha256: {file.sha256}")
    if explain_url is not None:
        lines.append(f"Every file of {file.name}, and the newest version the policy allows: {explain_url}")
    lines.append("Ask your security team for an exception, or pick a version the policy allows.")
    return "\n".join(lines) + "\n"


REASON_LIMIT = 200  # characters of the reason phrase; the body keeps the whole text


def reason_phrase(decision: Decision) -> str:
    """The 403's reason phrase: `Denied by gate policy <policy/rule>: <message>` for the first denying rule,
    one line of printable ASCII (anything else, CR and LF included, becomes `?`), cut to REASON_LIMIT.
    pip, uv and poetry print a reason phrase verbatim, and none of them shows the body."""
    first = next(iter(decision.denying), None)
    text = "Denied by gate policy" if first is None else f"Denied by gate policy {first.ref}: {first.message}"
    text = "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split()))
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


def refusal(decision: Decision, explain_url: str | None = None) -> Response:
    return Response(
        refusal_text(decision, explain_url), status=f"403 {reason_phrase(decision)}", mimetype="text/plain"
    )


def keep(
    state: Gate, namespace: str, key: str, body: bytes, meta: dict[str, Any], *, until: dt.datetime | None,
    now: dt.datetime,
) -> None:
    """Store a body rendered from judgements that hold until `until` (None: until replaced), unless that
    moment has already passed."""
    if until is None or until > now:
        state.store.put(namespace, key, body, meta, None if until is None else until.timestamp())


def not_modified(tag: str) -> bool:
    """Whether the request's `If-None-Match` names the ETag `tag` (quoted, as `etag` makes it) or is `*`."""
    return request.if_none_match.contains_raw(tag)


def etag(body: bytes) -> str:
    """The strong ETag gate gives a body it renders."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def text_response(status: int, message: str, **headers: str) -> Response:
    """A plain-text answer a person reading an installer's error can act on."""
    return Response(message.rstrip("\n") + "\n", status=status, mimetype="text/plain", headers=headers)


UPSTREAM_STATUS = {Failure.UNAVAILABLE: 503, Failure.BAD_ANSWER: 502, Failure.NOT_FOUND: 404}


def upstream_status(err: UpstreamError) -> int:
    """The status gate answers upstream trouble with: 503 unavailable (try again), 502 a bad answer, 404."""
    return UPSTREAM_STATUS[err.failure]


def upstream_failure(err: UpstreamError, doing: str = "") -> Response:
    """Upstream trouble: `upstream_status` with a message (prefixed with what gate was `doing`, as in
    `cannot fetch x.whl`), never an index gate did not filter."""
    log.warning("upstream: %s", err)
    status = upstream_status(err)
    headers = {"Cache-Control": "no-store"} | ({"Retry-After": "30"} if status == 503 else {})
    return text_response(status, f"gate: {doing}{': ' if doing else ''}{err}", **headers)
