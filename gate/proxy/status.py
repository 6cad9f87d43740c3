"""The status page `/-/` for the security team: the loaded policies, recent denials from the audit log,
waivers expiring soon, upstream health and cache hit rates; HTML for a browser, JSON for
`Accept: application/json`.

It shows every client's denials and addresses, so only the clients the settings name may read it: by the
socket's address (`Settings.status_allow`, loopback by default; `X-Forwarded-For` and other headers are
never read; and only under gate's own name in Host, against DNS rebinding) or with
`Authorization: Bearer <Settings.status_token>`. Anyone else gets the 404 an unknown
path gets, whatever they sent. Everything shown comes from policies, the audit log (upstream filenames,
rule messages) or the metrics: the template escapes all of it (autoescape on, no `|safe` but the constant
style sheet), and the Content-Security-Policy allows no script at all."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, request

from gate.evaluate import policy_digest
from gate.facts import iso_z, parse_time
from gate.policy.compile import CompiledPolicy
from gate.policy.model import PolicyException
from gate.proxy.audit import Sink, SinkError
from gate.proxy.html import HTML, html_page
from gate.proxy.metrics import Metrics
from gate.proxy.settings import Network, Settings
from gate.proxy.state import Gate, gate_state
from gate.redact import redact

log = logging.getLogger(__name__)

MAX_DENIALS = 50  # denials shown, newest first
TAIL_BYTES = 1 << 20  # of the audit log read for them: its end, whatever its size
MAX_TEXT = 300  # characters of one field of an audit record shown
MAX_RULES = 10  # violations shown for one denial
WAIVER_HORIZON = dt.timedelta(days=30)
FAILED_OUTCOMES = frozenset({"502", "503"})  # upstream outcomes that are failures (404: no such project)
JSON = "application/json"
def status_blueprint() -> Blueprint:
    """The status page, for the clients the settings allow (a 404 for any other)."""
    blueprint = Blueprint("status", __name__)
    blueprint.add_url_rule("/-/", "page", page, methods=["GET"])
    return blueprint


def page() -> Response:
    state = gate_state()
    if not may_read(state.settings, request.remote_addr, request.headers.get("Authorization"), request.host):
        log.info("status page refused to %s", request.remote_addr)  # never the header: it may hold a token
        abort(404)
    report = status_report(state)
    vary = {"Vary": "Accept, Authorization"}
    if request.accept_mimetypes.best_match([HTML, JSON], default=HTML) == JSON:
        plain = vary | {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        return Response(json.dumps(report, indent=1) + "\n", mimetype=JSON, headers=plain)
    return html_page("status.html", vary, report=report)


# Access


def may_read(settings: Settings, remote_addr: str | None, authorization: str | None, host: str) -> bool:
    """Whether a client at `remote_addr` (the socket's peer) sending `authorization` and `host` (the Host
    header) may read the page: by the token, or by its address when it asked for gate by an address,
    `localhost` or the `public_url` host (a DNS-rebinding page's own name in Host gets nothing)."""
    by_address = address_allowed(remote_addr, settings.status_allow) and own_host(host, settings.public_url)
    return by_address or token_matches(authorization, settings.status_token)


def own_host(host: str, public_url: str | None) -> bool:
    """Whether the Host header `host` names gate itself: an IP address, `localhost`, or `public_url`'s host."""
    try:
        name = (urlsplit(f"//{host}").hostname or "").rstrip(".")
    except ValueError:
        return False
    if name == "localhost" or (public_url is not None and name == urlsplit(public_url).hostname):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def address_allowed(remote_addr: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether `remote_addr` is in one of `networks` (an IPv4-mapped IPv6 address as its IPv4 address);
    an address that does not parse (a Unix socket's peer) is in none."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def token_matches(authorization: str | None, token: str | None) -> bool:
    """Whether `authorization` is `Bearer <token>`, compared in constant time (of digests: nor the length)."""
    if token is None or not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    given_digest = hashlib.sha256(given.strip().encode("utf-8", "replace")).digest()
    return hmac.compare_digest(given_digest, hashlib.sha256(token.encode()).digest())


# What the page shows


def status_report(state: Gate) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data."""
    now = state.now()
    settings = state.settings
    denials, audit_note = sink_denials(state.audit.sink) or recent_denials(state.audit.path)
    return {
        "time": seconds(now),
        "upstream": redact(settings.upstream),
        "conda_channels": [{"name": name, "url": redact(url)} for name, url in settings.conda_channels],
        "mode": "audit only (denied files are served)" if settings.audit_only else "enforcing",
        "unmatched": settings.unmatched.value,
        "policy_digest": state.policy_digest,
        "policies": [policy_summary(p) for p in state.policies],
        "denials": denials,
        "audit": audit_note,
        "audit_failing": state.audit.failing,
        "cache_backend": state.store.health(),
        "waivers": expiring_waivers(state.policies, now),
        "upstream_health": upstream_health(state.metrics),
        "caches": cache_rates(state.metrics),
    }


def policy_summary(compiled: CompiledPolicy) -> dict[str, Any]:
    policy = compiled.policy
    match = policy.match
    return {
        "name": policy.name,
        "file": policy.file,
        "mode": policy.mode.value,
        "ecosystems": sorted(e.value for e in match.ecosystems) if match.ecosystems is not None else ["all"],
        "packages": [p.source for p in match.packages] or ["*"],
        "exclude": [p.source for p in match.exclude],
        "rules": len(compiled.rules),
        "exceptions": len(policy.exceptions),
        "digest": policy_digest([compiled]),
    }


def expiring_waivers(policies: list[CompiledPolicy], now: dt.datetime) -> list[dict[str, Any]]:
    """The exceptions still in force that end within WAIVER_HORIZON, soonest first."""
    found: list[tuple[dt.datetime, str, PolicyException]] = [
        (exception.expires, compiled.name, exception)
        for compiled in policies
        for exception in compiled.policy.exceptions
        if now < exception.expires <= now + WAIVER_HORIZON
    ]
    return [
        {
            "policy": name,
            "packages": [s.name.source + (str(s.versions) if s.versions else "") for s in exception.packages],
            "waive": list(exception.waive),
            "reason": exception.reason,
            "owner": exception.owner,
            "until": exception.until,
            "expires": iso_z(expires),
            "days_left": (expires - now).days,
        }
        for expires, name, exception in sorted(found, key=lambda f: (f[0], f[1]))
    ]


def upstream_health(metrics: Metrics) -> dict[str, Any]:
    """Upstream answers by outcome (failures marked) and the mean wait, since the processes started."""
    requests = metrics.totals("gate_upstream_requests_total")
    outcomes = {labels.get("outcome", "?"): int(value) for labels, value in requests}
    seconds = sum(v for _, v in metrics.totals("gate_upstream_seconds_sum"))
    waits = sum(v for _, v in metrics.totals("gate_upstream_seconds_count"))
    counted = {name: int(sum(v for _, v in metrics.totals(name)))
               for name in ("gate_integrity_failures_total", "gate_busy_total", "gate_audit_failures_total")}
    return {
        "outcomes": [{"outcome": o, "count": n, "failure": o in FAILED_OUTCOMES} for o, n in sorted(outcomes.items())],
        "failures": sum(n for o, n in outcomes.items() if o in FAILED_OUTCOMES),
        "mean_seconds": round(seconds / waits, 3) if waits else None,
        "integrity_failures": counted["gate_integrity_failures_total"],
        "busy": counted["gate_busy_total"],
        "audit_records_lost": counted["gate_audit_failures_total"],
    }


def cache_rates(metrics: Metrics) -> list[dict[str, Any]]:
    """Hits, misses and the hit rate of each cache, since the processes started."""
    counts: dict[str, list[int]] = {}
    for index, name in enumerate(("gate_cache_hits_total", "gate_cache_misses_total")):
        for labels, value in metrics.totals(name):
            counts.setdefault(labels.get("cache", "?"), [0, 0])[index] += int(value)
    return [
        {"cache": cache, "hits": hits, "misses": misses, "rate": round(hits / (hits + misses), 3)}
        for cache, (hits, misses) in sorted(counts.items())
        if hits + misses
    ]


# The audit log's tail


def sink_denials(sink: Sink) -> tuple[list[dict[str, Any]], str] | None:
    """(the newest MAX_DENIALS denials of every replica, from a sink that reads them back: the audit table; where
    they come from, or why there are none), or None for a sink that cannot (a file is read by `recent_denials`)."""
    try:
        records = sink.recent_denials(MAX_DENIALS)
    except SinkError as err:
        return [], f"cannot read the audit table at {sink.where}: {err}"
    if records is None:
        return None
    return [denial(r) for r in records], f"newest first, every replica's, from the table gate_audit at {sink.where}"


def recent_denials(path: Path | None) -> tuple[list[dict[str, Any]], str]:
    """(the newest denials in the last TAIL_BYTES of the audit log, at most MAX_DENIALS; a note on where
    they come from, or why there are none)."""
    if path is None:
        return [], "no audit log file or table to read (give --cache-dir, --audit-log or --audit-url postgresql://...)"
    try:
        lines = tail_lines(path, TAIL_BYTES)
    except OSError as err:
        return [], f"cannot read the audit log {path}: {err.strerror or err}"
    denials, unreadable = [], 0
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # not gate's JSON: a torn or foreign line
            unreadable += 1
            continue
        if isinstance(record, dict) and record.get("verdict") == "deny":
            denials.append(denial(record))
            if len(denials) == MAX_DENIALS:
                break
    note = f"newest first, from the last {TAIL_BYTES // 1024} KiB of {path}"
    return denials, note + (f"; {unreadable} unreadable line(s) skipped" if unreadable else "")


def tail_lines(path: Path, limit: int) -> list[bytes]:
    """The complete lines in the last `limit` bytes of the regular file `path` (a line cut by the limit, or
    one still being written, is left out); OSError if it cannot be read or is not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO put in its place must not hang the page
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(0, "not a regular file")
        size = file.seek(0, os.SEEK_END)
        start = max(size - limit - 1, 0)  # one byte more: whether the first line begins at the limit
        file.seek(start)
        data = file.read(size - start)
    lines = data.split(b"\n")[:-1]  # the last piece ends without a newline: empty, or not written yet
    return lines[1:] if start > 0 else lines


def denial(record: dict[str, Any]) -> dict[str, Any]:
    """The shown fields of a denial's audit record, each a bounded text whatever the record holds."""
    rules = record.get("rules")
    return {
        "time": when(record.get("time")),
        "client": text(record.get("client")),
        "event": text(record.get("event")),
        "ecosystem": text(record.get("ecosystem")),
        "project": text(record.get("project")),
        "file": text(record.get("file")),
        "served": record.get("served") is True,
        "rules": [rule(r) for r in rules[:MAX_RULES] if isinstance(r, dict)] if isinstance(rules, list) else [],
    }


def rule(violation: dict[str, Any]) -> str:
    """`policy/rule: message` of a record's violation, saying when it did not deny (audit mode, waived)."""
    said = f"{text(violation.get('policy'))}/{text(violation.get('rule'))}: {text(violation.get('message'))}"
    if violation.get("waived") is not None:
        said += f" (waived: {text(violation.get('waived'))})"
    elif violation.get("enforced") is not True:
        said += " (not enforced)"
    return text(said)


def text(value: Any) -> str:
    """A field of an audit record as bounded text (anything else than a string as JSON)."""
    shown = value if isinstance(value, str) else "" if value is None else json.dumps(value)[:MAX_TEXT]
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 3] + "..."


def when(value: Any) -> str:
    """An audit record's time, to the second, when it reads as one; else the bounded text."""
    try:
        return seconds(parse_time(value)) if isinstance(value, str) and len(value) <= 40 else text(value)
    except ValueError:
        return text(value)


def seconds(moment: dt.datetime) -> str:
    return iso_z(moment.replace(microsecond=0))
